"""Find secrets before they reach the run record, in a finished run's files, and redact them.

A run record is evidence an auditor keeps for years, so it must never hold a credential. Two
detectors work together; a finding never contains the matched value, so findings can be
logged, shown and raised safely.

**Exact: fingerprints of the credentials the run handled.** The run never stores a secret, but
it stores the SHA-256 of each one it handled (``secret_fingerprints`` in ``session.assumed``
and ``credentials.fingerprinted`` events: :func:`fingerprints_in_events`); a hash of a 40-char
random secret reveals nothing. :func:`fingerprinted` cuts the text into candidate tokens
(maximal runs of ``[A-Za-z0-9/+=]`` of 16 characters or more, and their substrings after a
``key=``, once JSON/Python escapes, ``%2B``/``%2F``/``%3D`` and HTML entities are decoded) and
reports every one whose SHA-256 is a fingerprint: wherever and however the credential was
printed (a botocore debug log, a header, a repr), it is found, and nothing else ever is.

**Patterns in context**, for what no fingerprint covers (another profile's key, a TOTP seed,
a code). A value is flagged when its *context* says what it is, or when it stands alone and
is shaped like a random secret:

* AWS secret access keys: 40-character ``[A-Za-z0-9/+]`` values of a key whose name says
  *secret* (``SecretAccessKey``, ``aws_secret_access_key``, ``<SecretAccessKey>``), or
  standing alone (bounded by spaces, quotes, brackets, ``=`` ... not by ``/ - _ . :``, so a
  path or ARN component never counts) and random-shaped: both cases, not hex, not base64 of
  text, no ``20261126T051500Z`` time, and not reading like words (see below);
* session tokens: values of ``SessionToken``, ``aws_session_token``, ``X-Amz-Security-Token``
  ...; any base64 token that starts with an STS token header (it decodes to ``!\\n\\torigin_ec``,
  ``\\x17\\n\\x06er/aws`` ...); or a standalone random-shaped base64 token of 64+ characters
  that does not decode to text (a credential report or a ``NextToken`` is base64 of text);
* TOTP seeds: base32 ``[A-Z2-7]{16,}`` values of a *seed*/*secret*/*TOTP* key, or standalone
  ones that are not an AWS id (``AKIA...``, ``AIDA...``) and do not read like words;
* ``otpauth://`` URIs (the payload of a virtual MFA device's QR code);
* six-digit one-time codes next to a code label (``AuthenticationCode1``, *MFA code*, *otp*,
  ``--token-code``; not *error/status/exit code*), not inside a longer number, time or id;
* any exact string the caller knows to be secret (``known``; shorter than 6 characters is
  ignored, it would match everywhere).

"Reads like words": at least 40% of its letter pairs are among the 120 most common English
bigrams (and, mixed case, its lowercase runs average 2.5+ letters; upper case, 30%+ vowels and
one digit at most, or two at the end). Names, paths and tickets read like words; random secrets
almost never do. A standalone value under a key that names an identifier (``name``,
``serial``, ``arn``, ``id``, ``path``, ``ticket``, ``digest`` ...) is never taken for a secret
by shape alone.

Measured on ``tests/record/scan_corpus.py`` (1,563 legitimate values generated from the
project's formats, 201 secrets in the contexts they leak in): no false positive, no miss.
``make bench`` (``bench/scan_bench.py``) prints precision, recall and speed (on a fleet audit's
findings.json, CSV and HTML 9 to 17 times the plain regex scan's, 20 to 55 MB/s on a busy 2-core
machine; on a notebook of botocore DEBUG lines 1.3 to 1.8 times, 4 to 5 MB/s, the time going to
judging its thousands of tokens), and the miss rate of *bare* random tokens with no context at
all, which only their shape can give away: 0.07% of 40-character keys, 0.005% of 80-character
tokens, 0.5% / 0.2% / 0.03% / 0% of 16 / 20 / 26 / 32-character seeds (short seeds and
upper-case names overlap; names win, so a legitimate value never stops a run).

**Why not detect-secrets** (PyPI 1.5.0, measured on the same corpus by the bench). It installs
cleanly (pure Python; pyyaml and requests, both already locked), but it is built for source
code, not for run records, and loses on precision, recall and speed (0.8 MB/s ad hoc, 0.1 MB/s
in file mode, against 7.5 MB/s here on the same corpus):

* its ad-hoc ``scan_line`` mode (which also looks at unquoted strings) finds 95.5% of the
  secrets but flags 1,422 of the 1,563 legitimate values (precision 0.12): every run dir,
  device serial, FIDO serial, access key id (its AWS plugin flags ``AKIA``/``ASIA`` ids, which
  the record must keep to name the sessions CloudTrail shows) and digest;
* its file mode (``detect-secrets scan``) finds 32% (no TOTP-seed, otpauth or one-time-code
  detector; keys in debug logs, headers and XML are not in quotes) and still flags 298
  legitimate values (hex digests, key ids, papermill's parameters);
* nothing in it knows the run's own credentials: the fingerprints here are exact.

Its entropy plugins could be tuned, but the result would be these rules again, with a
dependency more.

**Fast on large structured text, same findings.** A fleet audit's findings.json, CSV and HTML
hold thousands of *mfa*, *security*, *code* and *token* words, in which a labelled pattern tried
at every word start crawls. :class:`_Search` finds each pattern's matches without that: the
keywords first (plain searches of the text folded to lower-case ASCII), then the pattern only
where a match holding one can start; the token patterns as checks of the candidate runs found
once; the escapes by their three literal-led branches. Every method gives what ``finditer``
of the same pattern gives (``tests/record/test_scan_equivalence.py``), so the findings are
those of the plain regex scan, on every input.

The patterns are heuristics against accidents, not against someone hiding a secret on purpose:
a secret split in two, encoded or in an image is not found (unless it is fingerprinted and
merely escaped).

What is found in a file someone else wrote (an executed notebook) is redacted in place
(:func:`redact_file`) with a marker such as ``[REDACTED secret-access-key]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import re
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS",
    "Finding",
    "Located",
    "find_secrets",
    "fingerprint",
    "fingerprinted",
    "fingerprints_in_events",
    "fingerprints_in_events_bytes",
    "file_findings",
    "findings",
    "marker",
    "redact_file",
    "scan_path",
]

SECRET_ACCESS_KEY = "secret-access-key"
SESSION_TOKEN = "session-token"
AUTHENTICATOR_SECRET = "authenticator-secret"  # a TOTP secret key
OTPAUTH_URI = "otpauth-uri"
ONE_TIME_CODE = "one-time-code"
KNOWN_SECRET = "known-secret"
KINDS = (
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    AUTHENTICATOR_SECRET,
    OTPAUTH_URI,
    ONE_TIME_CODE,
    KNOWN_SECRET,
)

_MIN_KNOWN = 6
_MIN_CANDIDATE = 16
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def fingerprint(secret: str) -> str:
    """The SHA-256 (hex) of ``secret``: what the record keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def marker(kind: str) -> str:
    """What a redacted value is replaced with."""
    return f"[REDACTED {kind}]"


@dataclass(frozen=True)
class Finding:
    """One thing that looks like a secret: its kind, a description and where (never the value).

    ``start``/``end`` index the scanned text (for redaction); ``line``/``col`` are 1-based."""

    kind: str
    what: str
    start: int
    end: int
    line: int
    col: int

    def __str__(self) -> str:
        if self.line == 0:  # binary content: no lines
            return f"{self.what} in binary content"
        return f"{self.what} at line {self.line}, col {self.col}"


# --- decoding escapes, keeping positions ------------------------------------------------------

# one or more backslashes and an escape (JSON, Python repr, both), URL-encoded + / =, and the
# HTML entities for them: decoded before scanning, mapped back to the raw text for redaction
_RE_ESCAPE = re.compile(
    r"\\+(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[nrtbfv0\"'/\\])"
    r"|%(?:2[bBfF]|3[dD])"
    r"|&#(?:[xX](?:2[bBfF]|3[dD])|43|47|61);"
)
# its three branches apart, each led by a literal (which the engine searches fast); a match of
# one never holds a character another's starts with, so theirs, merged, are _RE_ESCAPE's
_RE_ESCAPE_BRANCHES = (
    ("\\", re.compile(r"\\\\*(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[nrtbfv0\"'/\\])")),
    ("%", re.compile(r"%(?:2[bBfF]|3[dD])")),
    ("&#", re.compile(r"&#(?:[xX](?:2[bBfF]|3[dD])|43|47|61);")),
)
_DECODED = {
    "u002b": "+",
    "x2b": "+",
    "%2b": "+",
    "&#x2b": "+",
    "&#43": "+",
    "u002f": "/",
    "x2f": "/",
    "/": "/",
    "%2f": "/",
    "&#x2f": "/",
    "&#47": "/",
    "u003d": "=",
    "x3d": "=",
    "%3d": "=",
    "&#x3d": "=",
    "&#61": "=",
}
_RE_DATA_URI = re.compile(r"data:(?:image|video|audio)/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+")
# public SSH material: an armored signature (approvals, seals) and a public key line; masked
# only when the base64 really is one (it decodes to SSHSIG, or to the key's own type name)
_RE_SSH_SIGNATURE = re.compile(
    r"-----BEGIN SSH SIGNATURE-----(?P<body>[A-Za-z0-9+/=\s]+)-----END SSH SIGNATURE-----"
)
_RE_SSH_PUBLIC_KEY = re.compile(
    r"(?P<type>ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|"
    r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) "
    r"(?P<body>AAAA[A-Za-z0-9+/=]+)"
)


def _mask_public_ssh(text: str) -> str:
    """``text`` with genuine SSH signatures and public keys blanked out: they are public
    (a signature and a public key reveal no secret) and base64, which would look random."""

    def decoded(body: str) -> bytes:
        try:
            return base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return b""

    def signature(m: re.Match[str]) -> str:
        return " " * len(m.group()) if decoded(m.group("body"))[:6] == b"SSHSIG" else m.group()

    def public_key(m: re.Match[str]) -> str:
        kind = m.group("type").encode()
        head = len(kind).to_bytes(4, "big") + kind
        return " " * len(m.group()) if decoded(m.group("body")).startswith(head) else m.group()

    if "SSH SIGNATURE" in text:
        text = _RE_SSH_SIGNATURE.sub(signature, text)
    if "AAAA" in text:
        text = _RE_SSH_PUBLIC_KEY.sub(public_key, text)
    return text


def _escapes(raw: str) -> Iterator[re.Match[str]]:
    """``_RE_ESCAPE.finditer(raw)``."""
    found = [r.finditer(raw) for lead, r in _RE_ESCAPE_BRANCHES if lead in raw]
    return heapq.merge(*found, key=lambda m: m.start())


class _Decoded:
    """``raw`` with escapes decoded (each escape one character: ``+ / =`` or a space), and the
    way back from a position in the decoded text to the raw text."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self._nstart: list[int] = []  # decoded start of each segment
        self._rstart: list[int] = []  # raw start of each segment
        self._rend: list[int] = []  # raw end of an escape segment, -1 for a copied one
        pieces: list[str] = []
        pos = npos = 0
        for m in _escapes(raw):
            if m.start() > pos:
                self._segment(npos, pos, -1)
                pieces.append(raw[pos : m.start()])
                npos += m.start() - pos
            self._segment(npos, m.start(), m.end())
            pieces.append(_DECODED.get(m.group().lstrip("\\").lower().rstrip(";"), " "))
            npos += 1
            pos = m.end()
        if not self._nstart:
            self.text = raw
            return
        if pos < len(raw):
            self._segment(npos, pos, -1)
            pieces.append(raw[pos:])
        self.text = "".join(pieces)

    def _segment(self, npos: int, rpos: int, rend: int) -> None:
        self._nstart.append(npos)
        self._rstart.append(rpos)
        self._rend.append(rend)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The raw span of the decoded span ``[start, end)``."""
        if not self._nstart:
            return start, end
        return self._raw(start, False), self._raw(end - 1, True)

    def _raw(self, i: int, after: bool) -> int:
        k = bisect_right(self._nstart, i) - 1
        if self._rend[k] >= 0:  # an escape: the whole of it
            return self._rend[k] if after else self._rstart[k]
        pos = self._rstart[k] + (i - self._nstart[k])
        return pos + 1 if after else pos


# --- the shapes of random secrets and of names ------------------------------------------------

# the 120 most common English letter pairs (Norvig's counts over the Google books corpus)
_BIGRAMS = frozenset(
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le "
    "ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur ca el ta la ns di fo ho pe ec "
    "pr no ct us ac ot il tr ly nc et ut ss so rs un lo wa ge ie wh ee wi em ad ol rt po we na "
    "ul ni ts mo ow pa im mi ai sh ir su id os iv ia am fi ci vi pl ig tu ev ld ry mp fe bl ab "
    "gh ty op wo sa ay ex ke fr oo av".split()
)
_VOWELS = frozenset("AEIOUaeiou")
_RE_HEX = re.compile(r"[0-9a-fA-F]+")
_RE_LOWER_RUN = re.compile(r"[a-z]+")
_RE_BASIC_TIME = re.compile(r"\d{8}T\d{6}Z")
_RE_UPPER_NAME = re.compile(r"[A-Z]+[2-7]{0,2}")
_RE_AWS_ID = re.compile(
    r"(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|APKA|ABIA|ACCA|AIPA|ASCA|A3T[A-Z0-9])[A-Z0-9]{16,17}"
)


def _bigram_share(token: str) -> float:
    pairs = hits = 0
    for a, b in zip(token, token[1:], strict=False):
        if a.isalpha() and b.isalpha() and not (a.islower() and b.isupper()):
            pairs += 1
            hits += (a + b).lower() in _BIGRAMS
    return hits / pairs if pairs else 0.0


def _reads_like_words(token: str) -> bool:
    """A name, a path or a sentence, not a random string (see the module docstring)."""
    if _bigram_share(token) < 0.4:
        return False
    if any(c.islower() for c in token):
        runs = _RE_LOWER_RUN.findall(token)
        return sum(map(len, runs)) / len(runs) >= 2.5
    letters = [c for c in token if c.isalpha()]
    vowels = sum(c in _VOWELS for c in letters)
    digits = len(token) - len(letters)
    return (
        bool(letters)
        and vowels >= 0.3 * len(letters)
        and (digits <= 1 or bool(_RE_UPPER_NAME.fullmatch(token)))
    )


def _decodes_to_text(token: str) -> bool:
    """Base64 of text (a report, a JSON page token, a name): not a random secret."""
    core = token.rstrip("=")
    try:
        raw = base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not raw:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in raw)
    return printable >= 0.85 * len(raw)


def _random_base64(token: str) -> bool:
    """Shaped like a random base64 secret: both cases, not hex, not words, not text."""
    core = token.rstrip("=")
    return (
        any(c.isupper() for c in core)
        and any(c.islower() for c in core)
        and not _RE_HEX.fullmatch(core)
        and not _RE_BASIC_TIME.search(core)
        and not _reads_like_words(core)
        and not _decodes_to_text(core)
    )


def _random_base32(token: str) -> bool:
    core = token.rstrip("=")
    return len(set(core)) >= 6 and not _RE_AWS_ID.fullmatch(core) and not _reads_like_words(core)


def _sts_token(token: str) -> bool:
    """Starts like an STS session token: base64 of a small tag, ``\\n``, a length, then a
    name such as ``aws``, ``er/aws`` or ``origin_ec`` (``AQoDYXdz``, ``FwoGZXIvYXdz``,
    ``IQoJb3JpZ2luX2Vj``)."""
    try:
        head = base64.b64decode(token[:16] + "=" * (-len(token[:16]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(head) < 6 or head[1] != 0x0A or not 3 <= head[2] <= 12:
        return False
    name = head[3 : 3 + head[2]]
    return bool(re.fullmatch(rb"[a-z][a-z_/]{1,11}", name)) and (
        b"aws" in name or name.startswith(b"origin_")
    )


# --- context ----------------------------------------------------------------------------------

_B64 = "A-Za-z0-9/+"
# a key name, then what separates it from its value: JSON, YAML, Python, XML (``<Key>v``),
# shell (``KEY=v``), CLI (``--key v``), a call (``TOTP("v")``), a bytes repr (``b'v'``)
_SEP = r"""(?:[ \t"'`]*[:=>(][ \t"'`]*|[ \t]+)(?:b['"])?"""
_WORD_START = r"(?<![\w-])"
_SECRET_LABEL = r"(?P<label>(?i:[\w-]{0,40}secret[\w-]{0,40}))"
_TOKEN_LABEL = r"(?P<label>(?i:[\w-]{0,30}(?:session|security)[_-]?token))"
_SEED_LABEL = (
    r"(?P<label>(?i:[\w-]{0,40}(?:seed|secret|totp|hotp|otp[_-]?key|mfa[_-]?key)[\w-]{0,40}))"
)
_RE_LABELLED_KEY = re.compile(
    rf"{_WORD_START}{_SECRET_LABEL}{_SEP}(?P<tok>[{_B64}]{{40}})(?![{_B64}=])"
)
_RE_LABELLED_TOKEN = re.compile(
    rf"{_WORD_START}{_TOKEN_LABEL}{_SEP}(?P<tok>[{_B64}]{{40,}}={{0,2}})(?![{_B64}=])"
)
_RE_LABELLED_SEED = re.compile(
    rf"{_WORD_START}{_SEED_LABEL}{_SEP}(?P<tok>[A-Z2-7]{{16,}}={{0,6}})(?![A-Za-z0-9])"
)
_RE_B64_TOKEN = re.compile(rf"(?<![{_B64}=])[{_B64}]{{40,}}={{0,2}}(?![{_B64}=])")
_RE_B32_TOKEN = re.compile(r"(?<![A-Za-z0-9/+=])[A-Z2-7]{16,128}={0,6}(?![A-Za-z0-9/+=])")
_RE_OTPAUTH = re.compile(r"""(?i)otpauth(?:%3A|:)(?://|%2F%2F)[^\s"'<>\\]*""")
_RE_CODE = re.compile(
    r"(?<![\w-])(?P<label>(?i:[\w-]{0,40}?(?:code|otp|passcode)[12]?))(?![\w])"
    r"(?P<gap>[^\d\n,;{}()\[\]]{0,40}?)"
    r"(?<![\w.:/+#-])(?P<tok>\d{6})(?![\w:/+#-]|\.\d)"
)
_RE_CANDIDATE = re.compile(r"[A-Za-z0-9/+=]{16,}")
# nothing shorter is a candidate: a text without any of these cannot hold a finding
_RE_WORTH_A_LOOK = re.compile(r"[A-Za-z0-9/+=]{16}|(?<!\d)\d{6}(?!\d)|[\\%&]")
_RE_SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")

# a label naming an identifier: its value is never a secret by shape alone
_NOT_SECRET_LABEL = re.compile(
    r"(?i)name|serial|arn|(?<![a-z])id|id(?![a-z])|ids\b|path|dir|file|profile|ticket|digest|"
    r"sha|hash|fingerprint|version|ur[li]|endpoint|user|account|polic|bucket|device|host|"
    r"region|etag|checksum|signature|prefix|request|event|plan|alias|label|title|tag|role"
)
_QUOTES_SPACES = frozenset(" \t\"'`")
# words that make a "code" something else: an error code, a country code, source code ...
_CODE_NOT_SECRET = frozenset(
    "error status exit return http response reason country zip postal area source region "
    "event currency lang language unicode en de bar qr post op promo product color colour char "
    "key hex iso dial phone tax ref reference voucher coupon discount zone page line exception "
    "result message escape short byte object machine state city airport bank swift sort "
    "python shell sample example snippet".split()
)
_RE_LABEL_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _code_label_says_otherwise(label: str, before: str) -> bool:
    """``ErrorCode``, ``status_code``, ``exit code``, ``postcode`` ...: not a one-time code."""
    words = [w.lower() for w in _RE_LABEL_WORD.findall(label)]
    if before:
        words.append(before.lower())
    for word in words:
        if word in _CODE_NOT_SECRET or (word.endswith("code") and word[:-4] in _CODE_NOT_SECRET):
            return True
    return False


_WORD_BEFORE = re.compile(r"([A-Za-z]+)[ \t_-]+$")
_LEFT = frozenset(" \t\r\n\"'`([{<>,;|=")
_RIGHT = frozenset(" \t\r\n\"'`)]}<>,;|&")


def _standalone(text: str, start: int, end: int) -> bool:
    """Bounded by spaces, quotes, brackets, ``=``...: a value of its own, not a piece of a
    path, an ARN, a file name or a longer identifier."""
    if start > 0 and text[start - 1] not in _LEFT:
        return False
    if end < len(text):
        nxt = text[end]
        if nxt == ".":
            return end + 1 == len(text) or text[end + 1] in _RIGHT
        return nxt in _RIGHT
    return True


def _label_before(text: str, start: int) -> str:
    """The key name right before a value at ``start`` (``"name": "v``, ``name=v``, ``<Name>v``,
    ``name: b'v``), or ""."""
    j = start
    if (
        j >= 2
        and text[j - 1] in "'\""
        and text[j - 2] == "b"
        and (j < 3 or not text[j - 3].isalnum())
    ):
        j -= 2
    while j > 0 and text[j - 1] in _QUOTES_SPACES:
        j -= 1
    if j > 0 and text[j - 1] in ":=>(":
        j -= 1
        while j > 0 and text[j - 1] in _QUOTES_SPACES:
            j -= 1
    k = j
    while k > 0 and j - k < 60 and (text[k - 1].isalnum() or text[k - 1] in "_-"):
        k -= 1
    word = text[k:j]
    return word.lstrip("0123456789_-")


def _names_identifier(label: str) -> bool:
    return bool(label) and _NOT_SECRET_LABEL.search(label) is not None


# --- finding the patterns' matches fast -------------------------------------------------------


@dataclass(frozen=True)
class _Labelled:
    """A labelled pattern (``_RE_LABELLED_*``, ``_RE_CODE``), and what its label must hold:
    one of ``words`` (the alternatives of the label's keyword group, lower case), starting at
    most ``reach`` characters after the match's start."""

    pattern: re.Pattern[str]
    words: tuple[re.Pattern[bytes], ...]
    reach: int


def _labelled(pattern: re.Pattern[str], words: Iterable[str], reach: int) -> _Labelled:
    return _Labelled(pattern, tuple(re.compile(w.encode()) for w in words), reach)


_LABELLED_KEY = _labelled(_RE_LABELLED_KEY, ["secret"], 40)
_LABELLED_TOKEN = _labelled(_RE_LABELLED_TOKEN, ["session[_-]?token", "security[_-]?token"], 30)
_LABELLED_SEED = _labelled(
    _RE_LABELLED_SEED, ["seed", "secret", "totp", "hotp", "otp[_-]?key", "mfa[_-]?key"], 40
)
_LABELLED_CODE = _labelled(_RE_CODE, ["code", "otp", "passcode"], 40)
# where a labelled pattern's match can start, given where its keyword starts (the endpos):
# what the patterns begin with, up to their keyword
_RE_LABEL_START = re.compile(rf"{_WORD_START}(?i:[\w-])*\Z")
# the only characters outside ASCII that (?i) matches to an ASCII letter (İ ı K ſ)
_FOLD_TO_ASCII = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"), ("\u212a", "k"))
# the only ones str.lower() turns into ASCII letters: K into k, İ into i + a combining dot
_LOWER_TO_ASCII = (("\u0130", "i\u0307"), ("\u212a", "k"))
# a B64/B32 token is a whole maximal [A-Za-z0-9/+=] run (their look-arounds say so)
_RE_B64_RUN = re.compile(rf"[{_B64}]{{40,}}={{0,2}}")
_RE_B32_RUN = re.compile(r"[A-Z2-7]{16,128}={0,6}")
# a byte of a candidate run's characters to "a", any other to " "
_RUN_BYTES = bytes(0x61 if re.fullmatch("[A-Za-z0-9/+=]", chr(b)) else 0x20 for b in range(256))
_RUN_START = b"a" * _MIN_CANDIDATE


def _ascii(text: str, replacements: Iterable[tuple[str, str]] = ()) -> bytes:
    """``text``, each replacement made (where the character is there), as ASCII bytes: one
    byte a character, ``?`` for anything else."""
    for char, new in replacements:
        if char in text:
            text = text.replace(char, new)
    return text.encode("ascii", "replace")


class _Search:
    """The matches of the scanner's patterns in one text: exactly what ``finditer`` gives,
    found without trying every position.

    A labelled pattern begins ``(?<![\\w-])(?i:[\\w-]{0,N}KEYWORD``, so the engine tries the
    label at every word start, slowly when the keyword's letters are everywhere. Here each
    alternative of the keyword is looked for apart (every occurrence) in the text folded to
    lower-case ASCII, one byte a character (a (?i) match of an ASCII letter is the letter
    there); a match holding a keyword at ``q`` starts at the start of the ``[\\w-]`` run around
    ``q``, at most N characters before it (no other position can start one: the lookbehind;
    plain and (?i) ``[\\w-]`` are the same set, which holds the keywords' letters). The pattern
    is then matched at those starts only, in order, each from the last match's end on:
    ``finditer``'s leftmost, non-overlapping matches, spans and groups alike
    (``Pattern.match(text, pos)`` sees the text before ``pos`` for the lookbehind, and all of
    the text after it, however long the token).

    The B64 and B32 tokens' look-arounds make each a whole maximal run of ``[A-Za-z0-9/+=]``,
    like a fingerprint candidate (``_RE_CANDIDATE``): the runs are found once (with
    ``bytes.translate`` and ``find``), and each is checked whole.
    ``tests/record/test_scan_equivalence.py`` compares each method with the ``finditer`` it
    replaces, and the whole scan with one made of ``finditer`` loops."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: bytes | None = None
        self._runs: list[tuple[int, int]] | None = None

    def lower(self) -> bytes:
        """``text.lower()``'s ASCII letters, for the word gates (``b"token" in ...``): ASCII
        bytes of it, where every other character is one ``?``."""
        return _ascii(self.text, _LOWER_TO_ASCII).lower()

    def labelled(self, spec: _Labelled) -> Iterator[re.Match[str]]:
        """``spec.pattern.finditer(self.text)``."""
        text = self.text
        if self._folded is None:
            self._folded = _ascii(text, _FOLD_TO_ASCII).lower()
        folded = self._folded
        starts: set[int] = set()
        for word in spec.words:
            hit = word.search(folded)
            while hit is not None:
                q = hit.start()
                start = _RE_LABEL_START.search(text, max(0, q - spec.reach), q)
                if start is not None:
                    starts.add(start.start())
                hit = word.search(folded, q + 1)
        end = 0
        for pos in sorted(starts):
            if pos >= end and (m := spec.pattern.match(text, pos)) is not None:
                yield m
                end = m.end()

    def runs(self) -> list[tuple[int, int]]:
        """The spans of ``_RE_CANDIDATE.finditer(self.text)``: its maximal runs of 16 or more."""
        if self._runs is None:
            marks = _ascii(self.text).translate(_RUN_BYTES)
            self._runs = []
            start = marks.find(_RUN_START)
            while start != -1:
                end = marks.find(b" ", start + _MIN_CANDIDATE)
                end = len(marks) if end == -1 else end
                self._runs.append((start, end))
                start = marks.find(_RUN_START, end)
        return self._runs

    def b64_tokens(self) -> Iterator[tuple[int, int]]:
        """The spans of ``_RE_B64_TOKEN.finditer(self.text)``."""
        for start, end in self.runs():
            if end - start >= 40 and _RE_B64_RUN.fullmatch(self.text, start, end):
                yield start, end

    def b32_tokens(self) -> Iterator[tuple[int, int]]:
        """The spans of ``_RE_B32_TOKEN.finditer(self.text)``."""
        for start, end in self.runs():
            if end - start <= 134 and _RE_B32_RUN.fullmatch(self.text, start, end):
                yield start, end


# --- scanning text ----------------------------------------------------------------------------


class _Found:
    """Spans found so far, in decoded-text positions; the first claim on a span wins."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, str, str]] = []

    def add(self, start: int, end: int, kind: str, what: str) -> None:
        if any(start < e and s < end for s, e, _, _ in self.items):
            return
        self.items.append((start, end, kind, what))


def _candidates(run: str) -> Iterator[tuple[int, str]]:
    """(offset, token) for a maximal ``[A-Za-z0-9/+=]`` run: itself, what follows each ``=``
    inside it (``Token=v``), and each of those without ``=`` padding."""
    yield 0, run
    if run.endswith("="):
        yield 0, run.rstrip("=")
    i = run.find("=")
    while i != -1:
        j = i + 1
        if j < len(run) and run[j] != "=" and len(run) - j >= _MIN_CANDIDATE:
            rest = run[j:]
            yield j, rest
            if rest.endswith("="):
                yield j, rest.rstrip("=")
        i = run.find("=", j)


def _fingerprint_kind(token: str) -> str:
    return SECRET_ACCESS_KEY if len(token) == 40 else SESSION_TOKEN


def _scan_decoded(text: str, found: _Found, fingerprints: frozenset[str]) -> None:
    search = _Search(text)
    low = search.lower()  # a label's word must be there before its regex is worth running
    _scan_decoded_fingerprints(text, found, fingerprints, search)

    if b"otpauth" in low:
        for m in _RE_OTPAUTH.finditer(text):
            found.add(m.start(), m.end(), OTPAUTH_URI, "otpauth:// URI (an MFA QR code payload)")

    for m in search.labelled(_LABELLED_TOKEN) if b"token" in low else ():
        tok = m.group("tok")
        if not _RE_HEX.fullmatch(tok.rstrip("=")):
            found.add(
                m.start("tok"), m.end("tok"), SESSION_TOKEN, "session token (value of a token key)"
            )
    seedy = any(w in low for w in (b"seed", b"secret", b"otp", b"mfa"))
    for m in search.labelled(_LABELLED_SEED) if seedy else ():
        if not _names_identifier(m.group("label")) and len(set(m.group("tok"))) >= 6:
            found.add(
                m.start("tok"),
                m.end("tok"),
                AUTHENTICATOR_SECRET,
                "authenticator app's secret key (base32 value of a key named for one)",
            )
    for m in search.labelled(_LABELLED_KEY) if b"secret" in low else ():
        tok = m.group("tok")
        kinds = sum(
            (
                any(c.isupper() for c in tok),
                any(c.islower() for c in tok),
                any(c.isdigit() or c in "/+" for c in tok),
            )
        )
        if not _names_identifier(m.group("label")) and not _RE_HEX.fullmatch(tok) and kinds >= 2:
            found.add(
                m.start("tok"),
                m.end("tok"),
                SECRET_ACCESS_KEY,
                "AWS secret access key (value of a secret key name)",
            )

    for start, end in search.b64_tokens():
        tok = text[start:end]
        if len(tok) >= 48 and _sts_token(tok):
            found.add(start, end, SESSION_TOKEN, f"session token ({len(tok)}-character STS token)")
            continue
        if not (len(tok) == 40 or len(tok) >= 64) or _RE_HEX.fullmatch(tok):
            continue
        if not _standalone(text, start, end) or _names_identifier(_label_before(text, start)):
            continue
        if len(tok) == 40 and _random_base64(tok):
            found.add(
                start, end, SECRET_ACCESS_KEY, "AWS secret access key (40-character random token)"
            )
        elif len(tok) >= 64 and any(c.isdigit() for c in tok) and _random_base64(tok):
            found.add(
                start, end, SESSION_TOKEN, f"session token ({len(tok)}-character random token)"
            )

    for start, end in search.b32_tokens():
        tok = text[start:end]
        if (
            _standalone(text, start, end)
            and not _names_identifier(_label_before(text, start))
            and _random_base32(tok)
        ):
            found.add(
                start,
                end,
                AUTHENTICATOR_SECRET,
                f"authenticator app's secret key ({len(tok)}-character base32 token)",
            )

    codes = (b"code" in low or b"otp" in low) and _RE_SIX_DIGITS.search(text) is not None
    for m in search.labelled(_LABELLED_CODE) if codes else ():
        label = m.group("label")
        before = _WORD_BEFORE.search(text, max(0, m.start("label") - 24), m.start("label"))
        if _code_label_says_otherwise(label, before[1] if before else ""):
            continue
        found.add(
            m.start("tok"),
            m.end("tok"),
            ONE_TIME_CODE,
            "one-time MFA code (six digits next to a code label)",
        )


def _where(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def findings(
    text: str,
    known: Iterable[str] = (),
    fingerprints: Collection[str] = (),
    *,
    label: str | None = None,
) -> list[Finding]:
    """Everything in ``text`` that looks like a secret, in order, with spans in ``text``.

    ``fingerprints``: SHA-256 hex digests of credentials (exact matches, see the module
    docstring); ``known``: exact strings; ``label``: the key ``text`` is the value of (e.g. a
    JSON field's name), as context."""
    prefix = f'"{label}": "' if label else ""
    scanned = prefix + text
    found = _Found()
    for i, secret in enumerate(s for s in known if len(s) >= _MIN_KNOWN):
        start = scanned.find(secret)
        while start != -1:
            found.add(start, start + len(secret), KNOWN_SECRET, f"known secret #{i + 1}")
            start = scanned.find(secret, start + 1)
    if not _RE_WORTH_A_LOOK.search(scanned):
        return _located(text, found, len(prefix))
    decoded = _Decoded(scanned)
    masked = _mask_public_ssh(_RE_DATA_URI.sub(lambda m: " " * len(m.group()), decoded.text))
    inner = _Found()
    _scan_decoded(masked, inner, frozenset(fingerprints))
    for s, e, kind, what in inner.items:
        raw_start, raw_end = decoded.span(s, e)
        found.add(raw_start, raw_end, kind, what)
    return _located(text, found, len(prefix))


def _located(text: str, found: _Found, skip: int) -> list[Finding]:
    """The findings in ``text`` (spans found in ``skip`` characters of context + ``text``)."""
    out: list[Finding] = []
    for s, e, kind, what in sorted(found.items):
        if e <= skip:
            continue
        s, e = max(s, skip) - skip, e - skip
        line, col = _where(text, s)
        out.append(Finding(kind, what, s, e, line, col))
    return out


def find_secrets(
    text: str, known: Iterable[str] = (), fingerprints: Collection[str] = ()
) -> list[str]:
    """Findings in ``text``: one short description with a location each, never the value."""
    return [str(f) for f in findings(text, known, fingerprints)]


def fingerprinted(text: str, fingerprints: Collection[str]) -> list[Finding]:
    """Only the exact matches: tokens of ``text`` whose SHA-256 is one of ``fingerprints``."""
    found = _Found()
    decoded = _Decoded(text)
    _scan_decoded_fingerprints(decoded.text, found, frozenset(fingerprints))
    out = []
    for s, e, kind, what in sorted(found.items):
        rs, re_ = decoded.span(s, e)
        line, col = _where(text, rs)
        out.append(Finding(kind, what, rs, re_, line, col))
    return out


def _scan_decoded_fingerprints(
    text: str, found: _Found, fingerprints: frozenset[str], search: _Search | None = None
) -> None:
    if not fingerprints:
        return
    for run_start, run_end in (search or _Search(text)).runs():
        for offset, token in _candidates(text[run_start:run_end]):
            if len(token) >= _MIN_CANDIDATE and fingerprint(token) in fingerprints:
                start = run_start + offset
                kind = _fingerprint_kind(token)
                what = f"{kind.replace('-', ' ')} this run handled (its sha256 is on the record)"
                found.add(start, start + len(token), kind, what)
                break


def fingerprints_in_events(events: Iterable[dict[str, Any]]) -> set[str]:
    """Every ``secret_fingerprints`` entry in the events' data (sha256 hex digests)."""
    out: set[str] = set()

    def walk(value: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "secret_fingerprints" and isinstance(item, list | tuple):
                    out.update(
                        fp for fp in item if isinstance(fp, str) and _FINGERPRINT.fullmatch(fp)
                    )
                else:
                    walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    for event in events:
        if isinstance(event, dict):
            walk(event.get("data"), 0)
    return out


def fingerprints_in_events_bytes(raw: bytes) -> set[str]:
    """:func:`fingerprints_in_events` for the bytes of an events.jsonl file."""
    events = []
    for line in raw.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return fingerprints_in_events(events)


# --- files: notebooks and text ----------------------------------------------------------------

_SKIP_MIME_PREFIXES = ("image/", "video/", "audio/", "application/pdf")
# notebook keys that are structure, not a label that says what a value is
_STRUCTURAL = frozenset(
    {"source", "text", "data", "outputs", "metadata", "cells", "output_type", "name", "traceback"}
)


@dataclass(frozen=True)
class Located:
    """A finding in a file: ``where`` inside it (a notebook cell), or ``""`` for plain text."""

    where: str
    finding: Finding

    def __str__(self) -> str:
        return f"{self.where}: {self.finding}" if self.where else str(self.finding)


class _Scan:
    """One file's scan: what to look for, what was found, and (redacting) the counts."""

    def __init__(self, known: list[str], fingerprints: frozenset[str], redact: bool) -> None:
        self.known = known
        self.fingerprints = fingerprints
        self.redact = redact
        self.found: list[Located] = []

    def text(self, text: str, where: str, label: str | None = None) -> str:
        found = findings(text, self.known, self.fingerprints, label=label)
        self.found.extend(Located(where, f) for f in found)
        if not self.redact or not found:
            return text
        return _apply(text, [(f.start, f.end, f.kind) for f in found])

    def lines(self, lines: list[str], where: str, label: str | None = None) -> list[str]:
        """A notebook's list of lines, scanned as one text; redacted line by line."""
        joined = "".join(lines)
        found = findings(joined, self.known, self.fingerprints, label=label)
        self.found.extend(Located(where, f) for f in found)
        if not self.redact or not found:
            return lines
        out: list[str] = []
        pos = 0
        for line in lines:
            end = pos + len(line)
            spans = [
                (max(f.start, pos) - pos, min(f.end, end) - pos, f.kind)
                for f in found
                if f.start < end and pos < f.end
            ]
            out.append(_apply(line, spans) if spans else line)
            pos = end
        return out

    def value(self, value: Any, where: str, label: str | None = None) -> Any:
        if isinstance(value, str):
            return self.text(value, where, label)
        if isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):
                return self.lines(value, where, label)
            return [self.value(v, f"{where}[{i}]", label) for i, v in enumerate(value)]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                new_key = self.text(str(key), f"{where} key".strip())
                sub = f"{where}.{key}" if where else str(key)
                out[new_key] = self.value(item, sub, None if key in _STRUCTURAL else str(key))
            return out
        return value

    def bundle(self, bundle: Any, where: str) -> Any:
        """A MIME bundle: text entries scanned, binary media (images ...) left alone."""
        if not isinstance(bundle, dict):
            return self.value(bundle, where)
        return {
            mime: value
            if str(mime).startswith(_SKIP_MIME_PREFIXES)
            else self.value(value, f"{where} {mime}")
            for mime, value in bundle.items()
        }

    def notebook(self, nb: dict[str, Any]) -> dict[str, Any]:
        out = dict(nb)
        for key, value in nb.items():
            if key != "cells":
                out[key] = self.value(value, str(key))
        cells = nb.get("cells")
        if not isinstance(cells, list):
            return out
        new_cells: list[Any] = []
        for n, cell in enumerate(cells):
            if not isinstance(cell, dict):
                new_cells.append(self.value(cell, f"cell {n}"))
                continue
            at = f"cell {n} ({cell.get('cell_type', '?')})"
            new = dict(cell)
            for key, value in cell.items():
                if key == "outputs" and isinstance(value, list):
                    new[key] = [
                        self._output(out_, f"{at} outputs[{k}]") for k, out_ in enumerate(value)
                    ]
                elif key == "attachments" and isinstance(value, dict):
                    new[key] = {
                        name: self.bundle(b, f"{at} attachment {name!r}")
                        for name, b in value.items()
                    }
                elif key in ("cell_type", "id", "execution_count"):
                    continue
                else:
                    new[key] = self.value(value, f"{at} {key}")
            new_cells.append(new)
        out["cells"] = new_cells
        return out

    def _output(self, output: Any, at: str) -> Any:
        if not isinstance(output, dict):
            return self.value(output, at)
        new = dict(output)
        for key, value in output.items():
            if key == "data":
                new[key] = self.bundle(value, at)
            elif key in ("output_type", "execution_count"):
                continue
            else:
                new[key] = self.value(value, f"{at} {key}")
        return new


def _apply(text: str, spans: list[tuple[int, int, str]]) -> str:
    pieces: list[str] = []
    pos = 0
    for start, end, kind in sorted(spans):
        if start < pos:
            continue
        pieces += [text[pos:start], marker(kind)]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _scan_bytes(raw: bytes, name: str, scan: _Scan) -> bytes | None:
    """Scan (and, if ``scan.redact``, rewrite) one file's bytes; the new bytes or None."""
    if b"\0" in raw[:8192]:
        # binary: only exact strings and fingerprints can be looked for meaningfully
        text = raw.decode("latin-1")
        found = _Found()
        for i, secret in enumerate(s for s in scan.known if len(s) >= _MIN_KNOWN):
            pos = text.find(secret)
            if pos != -1:
                found.add(pos, pos + len(secret), KNOWN_SECRET, f"known secret #{i + 1}")
        _scan_decoded_fingerprints(text, found, scan.fingerprints)
        scan.found.extend(Located("", Finding(k, w, s, e, 0, 0)) for s, e, k, w in found.items)
        if scan.redact and found.items:
            return _apply(text, [(s, e, k) for s, e, k, _ in found.items]).encode("latin-1")
        return None
    text = raw.decode("utf-8", errors="replace")
    if name.endswith(".ipynb"):
        try:
            nb = json.loads(text)
        except ValueError:
            nb = None
        if isinstance(nb, dict):
            new = scan.notebook(nb)
            if scan.redact and scan.found:
                # nbformat's own layout, so the rewritten notebook diffs cleanly
                return (
                    json.dumps(new, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
                ).encode("utf-8")
            return None
    new_text = scan.text(text, "")
    return new_text.encode("utf-8") if scan.redact and scan.found else None


def file_findings(
    raw: bytes, name: str, known: Iterable[str] = (), fingerprints: Collection[str] = ()
) -> list[Located]:
    """What looks like a secret in a file's bytes (``name`` tells a notebook by ``.ipynb``)."""
    scan = _Scan(list(known), frozenset(fingerprints), redact=False)
    _scan_bytes(raw, name, scan)
    return scan.found


def redact_file(
    raw: bytes, name: str, known: Iterable[str] = (), fingerprints: Collection[str] = ()
) -> tuple[bytes, list[Located]]:
    """The file's bytes with every finding replaced by :func:`marker`, and the findings.

    A notebook stays a valid notebook (its JSON is rewritten as nbformat writes it); images and
    other binary media in it are left as they are. Bytes are returned unchanged when nothing
    is found."""
    scan = _Scan(list(known), frozenset(fingerprints), redact=True)
    new = _scan_bytes(raw, name, scan)
    return (raw if new is None else new), scan.found


def scan_path(
    path: Path, known: Iterable[str] = (), fingerprints: Collection[str] = ()
) -> list[str]:
    """Findings in a file or a directory tree, each prefixed with the file's relative path.

    Symbolic links are not followed. In ``.ipynb`` files the sources, metadata and text outputs
    are scanned; image outputs (and other binary media) are skipped."""
    known_list = list(known)
    path = Path(path)
    if path.is_file():
        files = [(path, path.name)]
    else:
        files = [
            (file, file.relative_to(path).as_posix())
            for file in sorted(path.rglob("*"))
            if not file.is_symlink() and file.is_file()
        ]
    out: list[str] = []
    for file, label in files:
        for located in file_findings(file.read_bytes(), file.name, known_list, fingerprints):
            out.append(f"{label}: {located}")
    return out
