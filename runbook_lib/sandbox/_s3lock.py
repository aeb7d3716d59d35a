"""S3 Object Lock as AWS enforces it (stub: to be implemented)."""

from __future__ import annotations
