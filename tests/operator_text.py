"""What an operator reads, and the one word it never uses: "seed" (project jargon for the blog
post the procedure comes from, and for an authenticator's secret key). Operator text says what
the person sees instead: the procedure (docs/procedure.md), the QR code, the authenticator
app's secret key. The sandbox's own internals (``runbook_sandbox``) may say it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SEED = re.compile(r"\bseeds?\b", re.IGNORECASE)


def notebook_text(path: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of every cell's source and every output's text of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for n, cell in enumerate(nb.get("cells", [])):
        yield f"{path.name} cell {n}", _joined(cell.get("source", ""))
        for output in cell.get("outputs", []):
            for key in ("text", "traceback", "evalue"):
                if key in output:
                    yield f"{path.name} cell {n} output", _joined(output[key])
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/"):
                    yield f"{path.name} cell {n} output {mime}", _joined(data)


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def seeds_in(pieces: Iterator[tuple[str, str]]) -> list[str]:
    """Where the word appears, with the words around it."""
    found = []
    for where, text in pieces:
        for match in SEED.finditer(text):
            found.append(f"{where}: ...{text[max(0, match.start() - 40) : match.end() + 40]}...")
    return found
