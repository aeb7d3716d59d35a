"""Find secrets before they reach the run record, and in a finished run's files.

A run record is evidence an auditor keeps for years, so it must never hold a credential. This
module looks for what the runbook handles that must not be written down:

* AWS secret access keys: 40-character ``[A-Za-z0-9/+]`` tokens given as the value of a key
  whose name says *secret* (``SecretAccessKey``, ``aws_secret_access_key`` ...), or standing
  alone when they contain ``/`` or ``+`` and both upper- and lower-case letters;
* session tokens: base64 tokens of 80 characters or more (hex digests are not tokens);
* TOTP seeds: base32 ``[A-Z2-7]{16,}`` tokens given as the value of a *seed*/*secret* key, or
  any such token of 32 characters or more that has a digit;
* ``otpauth://`` URIs (the payload of a virtual MFA device's QR code);
* six-digit one-time codes next to a word such as *code*, *otp* or ``AuthenticationCode1``
  (six digits inside a longer number, a timestamp or an account id are not codes);
* any exact string the caller knows to be secret (``known``; strings shorter than 6 characters
  are ignored, they would match everywhere).

A finding is a short description with a location hint (``line 3, col 17``). It never contains
the matched value, so findings can be logged, shown and raised safely.

The patterns are heuristics against accidents, not against someone hiding a secret on purpose:
a secret split in two, encoded or in an image is not found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["find_secrets", "scan_path"]

_MIN_KNOWN = 6

# A key name, then what separates it from its value in JSON, YAML, Python or an escaped JSON
# string inside a notebook (``\"secret\": \"...``), with an optional opening quote.
_SEP = r"""[\\"'\s]*[:=][\\"'\s]*"""
# Labels start at a word's start and are bounded, so a long word cannot make a regex quadratic.
_SECRET_LABEL = r"(?<![\w-])(?i:[\w-]{0,40}secret[\w-]{0,40})"
_SEED_LABEL = r"(?<![\w-])(?i:[\w-]{0,40}(?:seed|secret)[\w-]{0,40})"

_B64 = r"A-Za-z0-9/+"
_KEY_TOKEN = rf"(?<![{_B64}=])[{_B64}]{{40}}(?![{_B64}=])"
_RE_LABELLED_KEY = re.compile(rf"{_SECRET_LABEL}{_SEP}(?P<tok>{_KEY_TOKEN})")
_RE_KEY = re.compile(_KEY_TOKEN)
_RE_SESSION = re.compile(rf"(?<![{_B64}=])[{_B64}]{{80,}}={{0,2}}(?![{_B64}=])")
_B32_TOKEN = r"(?<![A-Za-z0-9])[A-Z2-7]{16,}=*(?![A-Za-z0-9])"
_RE_LABELLED_SEED = re.compile(rf"{_SEED_LABEL}{_SEP}(?P<tok>{_B32_TOKEN})")
_RE_SEED = re.compile(r"(?<![A-Za-z0-9])[A-Z2-7]{32,}=*(?![A-Za-z0-9])")
_RE_OTPAUTH = re.compile(r"""(?i)otpauth(?:%3A|:)(?://|%2F%2F)[^\s"'<>\\]*""")
_RE_CODE = re.compile(
    r"(?<![\w-])(?i:[\w-]{0,40}(?:code|otp)[\w-]{0,40})"
    r"[^\d\n]{0,12}?"
    r"(?<![\w.:/+-])(?P<tok>\d{6})(?![\w.:/+-])"
)
_RE_ESCAPE = re.compile(r'\\[nrtbf"\\]')
_RE_HEX = re.compile(r"[0-9a-fA-F]+")


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, col {col}"


def _mixed_case(token: str) -> bool:
    return any(c.isupper() for c in token) and any(c.islower() for c in token)


def _is_hex(token: str) -> bool:
    return _RE_HEX.fullmatch(token) is not None


def find_secrets(text: str, known: Iterable[str] = ()) -> list[str]:
    """Findings in ``text``: one short description with a location each, never the value."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, what: str) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, f"{what} at {_where(text, start)}"))

    for i, secret in enumerate(s for s in known if len(s) >= _MIN_KNOWN):
        start = text.find(secret)
        while start != -1:
            add(start, start + len(secret), f"known secret #{i + 1}")
            start = text.find(secret, start + 1)

    # JSON-escaped whitespace and quotes (``\n``, ``\"``) separate tokens like the real thing
    # would; replaced by two spaces so that positions stay the same.
    text = _RE_ESCAPE.sub("  ", text)

    for m in _RE_OTPAUTH.finditer(text):
        add(m.start(), m.end(), "otpauth:// URI (an MFA QR code payload)")

    for m in _RE_LABELLED_KEY.finditer(text):
        token = m.group("tok")
        if not _is_hex(token):
            add(m.start("tok"), m.end("tok"), "AWS secret access key (value of a secret key name)")
    for m in _RE_KEY.finditer(text):
        token = m.group()
        if ("/" in token or "+" in token) and _mixed_case(token):
            add(m.start(), m.end(), "AWS secret access key (40-character base64 token)")

    for m in _RE_SESSION.finditer(text):
        token = m.group().rstrip("=")
        kinds = sum(
            (
                any(c.isupper() for c in token),
                any(c.islower() for c in token),
                any(c.isdigit() for c in token),
            )
        )
        if not _is_hex(token) and kinds >= 2:
            add(m.start(), m.end(), f"session token ({len(m.group())}-character base64 token)")

    for m in _RE_LABELLED_SEED.finditer(text):
        add(m.start("tok"), m.end("tok"), "TOTP seed (base32 value of a seed/secret key name)")
    for m in _RE_SEED.finditer(text):
        if any(c in "234567" for c in m.group()):
            add(m.start(), m.end(), f"TOTP seed ({len(m.group())}-character base32 token)")

    for m in _RE_CODE.finditer(text):
        add(m.start("tok"), m.end("tok"), "one-time MFA code (six digits next to a code label)")

    return [what for _, what in sorted(found)]


# --- files ----------------------------------------------------------------------------------

_SKIP_MIME_PREFIXES = ("image/", "video/", "audio/", "application/pdf")
_RE_DATA_URI = re.compile(r"data:(?:image|video|audio)/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+")


def _text_of(value: Any) -> str:
    """A notebook field as text: lists of lines are joined, anything else is JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _notebook_parts(nb: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(location, text) for every scannable part of a notebook; image outputs are skipped."""
    if "metadata" in nb:
        yield "metadata", _text_of(nb["metadata"])
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return
    for n, cell in enumerate(cells):
        if not isinstance(cell, dict):
            yield f"cell {n}", _text_of(cell)
            continue
        where = f"cell {n} ({cell.get('cell_type', '?')})"
        yield f"{where} source", _text_of(cell.get("source", ""))
        if "metadata" in cell:
            yield f"{where} metadata", _text_of(cell["metadata"])
        attachments = cell.get("attachments")
        if isinstance(attachments, dict):
            for name, bundle in attachments.items():
                yield from _bundle(f"{where} attachment {name!r}", bundle)
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            continue
        for k, out in enumerate(outputs):
            at = f"{where} outputs[{k}]"
            if not isinstance(out, dict):
                yield at, _text_of(out)
                continue
            for key, value in out.items():
                if key == "data":
                    yield from _bundle(at, value)
                elif key in ("output_type", "execution_count"):
                    continue
                else:
                    yield f"{at} {key}", _text_of(value)


def _bundle(at: str, bundle: Any) -> Iterator[tuple[str, str]]:
    """The text entries of a MIME bundle; binary media (images ...) are skipped."""
    if not isinstance(bundle, dict):
        yield at, _text_of(bundle)
        return
    for mime, value in bundle.items():
        if str(mime).startswith(_SKIP_MIME_PREFIXES):
            continue
        yield f"{at} {mime}", _RE_DATA_URI.sub("data:<media>", _text_of(value))


def _scan_file(path: Path, label: str, known: list[str]) -> list[str]:
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        # Binary: only exact known strings can be looked for meaningfully.
        return [
            f"{label}: known secret #{i + 1} in binary content"
            for i, s in enumerate(s for s in known if len(s) >= _MIN_KNOWN)
            if s.encode() in raw
        ]
    text = raw.decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            nb = None
        if isinstance(nb, dict):
            return [
                f"{label}: {where}: {finding}"
                for where, part in _notebook_parts(nb)
                for finding in find_secrets(part, known)
            ]
    return [f"{label}: {finding}" for finding in find_secrets(text, known)]


def scan_path(path: Path, known: Iterable[str] = ()) -> list[str]:
    """Findings in a file or a directory tree, each prefixed with the file's relative path.

    Symbolic links are not followed. In ``.ipynb`` files the sources, metadata and text outputs
    are scanned; image outputs (and other binary media) are skipped.
    """
    known_list = list(known)
    path = Path(path)
    if path.is_file():
        return _scan_file(path, path.name, known_list)
    findings: list[str] = []
    for file in sorted(path.rglob("*")):
        if file.is_symlink() or not file.is_file():
            continue
        findings.extend(_scan_file(file, file.relative_to(path).as_posix(), known_list))
    return findings
