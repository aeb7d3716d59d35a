"""Archive a sealed run record to S3 with Object Lock (stub: being implemented)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import RunbookError


def archive_run(
    run_dir: Path,
    destination: str,
    retain_days: int,
    *,
    profile: str | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    raise RunbookError("archive is not implemented yet")
