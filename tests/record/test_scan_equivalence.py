"""The fast scan finds exactly what the plain regex scan finds: the same findings (kinds,
spans, descriptions) and the same redacted bytes, on every input.

The reference is the scanner as it was: every pattern run with ``finditer`` over the whole
text, the word gates on ``str.lower()`` (:class:`PlainSearch`, swapped in for
``secrets._Search``; ``_RE_ESCAPE.finditer`` for ``secrets._escapes``). Compared on the scan
corpus, the fleet audit's outputs (with and without secrets planted in them), thousands of
seeded random mixes of labels, keywords, separators and tokens, and adversarial strings
(keywords at the very start and end, labels of 40 and 41 characters before the keyword,
Unicode case folds, CRLF, JSON escapes); method by method and end to end. The Unicode facts
the fast search relies on are checked over every code point.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from runbook_lib.record import secrets
from runbook_lib.record.secrets import file_findings, findings, fingerprint, redact_file

from .fleet_corpus import fleet_files
from .scan_corpus import B32, B64, legitimate
from .scan_corpus import secrets as corpus_secrets

SPECS = {
    "key": secrets._LABELLED_KEY,
    "token": secrets._LABELLED_TOKEN,
    "seed": secrets._LABELLED_SEED,
    "code": secrets._LABELLED_CODE,
}
GATE_WORDS = ("otpauth", "token", "seed", "secret", "otp", "mfa", "code")
ALL_CHARS = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


class PlainSearch:
    """The reference: what ``_scan_decoded`` ran before ``_Search``, pattern by pattern."""

    def __init__(self, text: str) -> None:
        self.text = text

    def lower(self) -> bytes:
        # an ASCII word is in text.lower() exactly when its bytes are in this (UTF-8 puts
        # no ASCII byte in a character outside ASCII)
        return self.text.lower().encode("utf-8", "surrogatepass")

    def labelled(self, spec: secrets._Labelled) -> Iterator[re.Match[str]]:
        return spec.pattern.finditer(self.text)

    def runs(self) -> list[tuple[int, int]]:
        return [m.span() for m in secrets._RE_CANDIDATE.finditer(self.text)]

    def b64_tokens(self) -> list[tuple[int, int]]:
        return [m.span() for m in secrets._RE_B64_TOKEN.finditer(self.text)]

    def b32_tokens(self) -> list[tuple[int, int]]:
        return [m.span() for m in secrets._RE_B32_TOKEN.finditer(self.text)]


@contextmanager
def plain_scanner() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(secrets, "_Search", PlainSearch)
        mp.setattr(secrets, "_escapes", lambda raw: secrets._RE_ESCAPE.finditer(raw))
        yield


def described(m: re.Match[str]) -> tuple[Any, ...]:
    """A match's span and every group's span and text."""
    groups = m.re.groupindex
    return (m.span(), m.group(), tuple((name, m.span(name), m.group(name)) for name in groups))


def method_differences(text: str) -> list[str]:
    """Where ``_Search``'s methods (and ``_escapes``) differ from plain ``finditer`` on ``text``."""
    fast, plain = secrets._Search(text), PlainSearch(text)
    out = []
    for name, spec in SPECS.items():
        if [described(m) for m in fast.labelled(spec)] != [
            described(m) for m in plain.labelled(spec)
        ]:
            out.append(f"labelled {name}")
    for method in ("runs", "b64_tokens", "b32_tokens"):
        if list(getattr(fast, method)()) != list(getattr(plain, method)()):
            out.append(method)
    low_fast, low_plain = fast.lower(), plain.lower()
    for word in GATE_WORDS:
        if (word.encode() in low_fast) != (word.encode() in low_plain):
            out.append(f"gate {word}")
    if [(m.span(), m.group()) for m in secrets._escapes(text)] != [
        (m.span(), m.group()) for m in secrets._RE_ESCAPE.finditer(text)
    ]:
        out.append("escapes")
    return out


def scan_both(text: str, **kw: Any) -> tuple[list[secrets.Finding], list[secrets.Finding]]:
    fast = findings(text, **kw)
    with plain_scanner():
        plain = findings(text, **kw)
    return fast, plain


def redact_both(raw: bytes, name: str, **kw: Any) -> tuple[Any, Any]:
    fast = redact_file(raw, name, **kw)
    with plain_scanner():
        plain = redact_file(raw, name, **kw)
    return fast, plain


# --- inputs -------------------------------------------------------------------------------------

# what the fast search folds or keeps apart: (?i) matches these to s, k, i; str.lower() does
# not fold ſ or ı, and turns İ into two characters
FOLDS = {"s": "ſ", "k": "\u212a", "i": "ıİ"}
WORD_CHARS = string.ascii_letters + string.digits + "_-" + "éßΣσ数ſ\u212aİı"
KEYWORDS = (
    "secret seed totp hotp otp otp_key otpkey otp-key mfa_key mfakey mfa-key mfa code passcode "
    "session_token sessiontoken session-token security_token securitytoken security-token "
    "token session security AuthenticationCode1 AuthenticationCode2 code1 code3 otpauth"
).split()
LABELS = (
    "SecretAccessKey aws_secret_access_key secret_access_key client-secret SECRET "
    "SessionToken aws_session_token X-Amz-Security-Token x-amz-security-token SecurityToken "
    "TOTP_SEED totp_secret seed mfa_key MFA_KEY otp_key hotp AuthenticationCode1 "
    "error_code status_code exit-code ErrorCode postcode token-code --token-code MFA-code "
    "device_serial SerialNumber secret_name seed_path otp_file user_name"
).split()
SEPS = (
    ": ",
    "=",
    '": "',
    "': '",
    "><",
    ">",
    " ",
    "   ",
    "\t",
    '("',
    "('",
    "=b'",
    ': b"',
    "\n",
    "\r\n",
    ",",
    "",
    "-",
    "_",
    ".",
    "/",
    "\\n",
    '\\"',
    '\\\\"',
    "\\u0022",
    "%3D",
    "%2B",
    "&#61;",
    "&#x2F;",
    "&amp;",
    ":",
    "`",
    " code ",
    " MFA code: ",
)


class Mixer:
    """Seeded random texts built of labels, keywords, separators and tokens."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def fold(self, word: str) -> str:
        """``word`` in random case, now and then a letter in a Unicode fold of it."""
        out = []
        for c in word:
            c = c.upper() if self.r.random() < 0.3 else c
            if c.lower() in FOLDS and self.r.random() < 0.08:
                c = self.r.choice(FOLDS[c.lower()])
            out.append(c)
        return "".join(out)

    def label(self, core: str = "", suffix: bool = True) -> str:
        r = self.r
        core = self.fold(core or r.choice(KEYWORDS if r.random() < 0.6 else LABELS))
        # before the keyword: nothing, a few word characters, or about the 40 (30) allowed
        before = r.choice([0, 0, 1, 3, 8, 29, 30, 31, 39, 40, 41, 42, r.randrange(0, 50)])
        after = r.choice([0, 0, 0, 1, 5, 39, 40, 41, r.randrange(0, 50)]) if suffix else 0
        return self.chars(WORD_CHARS, before) + core + self.chars(WORD_CHARS, after)

    def token(self) -> str:
        r = self.r
        kind = r.randrange(12)
        if kind == 0:
            return self.chars(B64, r.choice([16, 39, 40, 40, 40, 40, 41, 48, 64, 80, 120]))
        if kind == 1:
            return self.chars(B64, r.choice([40, 64, 80])) + "=" * r.randrange(4)
        if kind == 2:
            n = r.choice([15, 16, 17, 20, 26, 32, 127, 128, 129, 134])
            return self.chars(B32, n) + "=" * r.choice([0, 0, 1, 6, 7])
        if kind == 3:
            return f"{r.randrange(10**7):0{r.choice([5, 6, 6, 6, 7])}d}"
        if kind == 4:
            head = r.choice([b"!\n\torigin_ec", b"\x17\n\x06er/aws", b"\x01\n\x03aws"])
            return base64.b64encode(head + r.randbytes(r.randrange(30, 200))).decode()
        if kind == 5:
            return self.chars("0123456789abcdef", r.choice([32, 40, 64]))
        if kind == 6:
            return "AKIA" + self.chars(B32, 16)
        if kind == 7:
            return f"otpauth://totp/Root:ops?secret={self.chars(B32, 32)}&issuer=AWS"
        if kind == 8:
            return "20261126T051500Z"
        if kind == 9:
            return self.chars(WORD_CHARS + " ", r.randrange(1, 30))
        if kind == 10:
            return json.dumps(self.chars(B64 + "\\\"'", r.randrange(10, 60)))
        return self.chars(B64 + "=/+", r.randrange(16, 90))

    def pair(self) -> list[str]:
        """A label and a value of its kind (a close call as often as a match)."""
        r = self.r
        kind = r.randrange(4)
        if kind == 0:
            words, value = ["secret", "SecretAccessKey", "secret_key"], self.chars(B64, 40)
        elif kind == 1:
            words = ["SessionToken", "security-token", "X-Amz-Security-Token", "sessiontoken"]
            value = self.chars(B64, r.choice([40, 80, 200])) + "=" * r.randrange(3)
        elif kind == 2:
            words = ["seed", "totp", "hotp", "otp_key", "mfa-key", "secret", "TOTPSeed"]
            value = self.chars(B32, r.choice([16, 20, 26, 32, 64]))
        else:
            words = ["code", "otp", "passcode", "AuthenticationCode1", "MFA code", "otp2"]
            value = f"{r.randrange(10**6):06d}"
        # a code label ends at its keyword, mostly
        label = self.label(r.choice(words), suffix=kind < 3 or r.random() < 0.3)
        gap = r.choice([": ", "=", '": "', " ", "><", "=b'", " is ", "\t", " - ", "\n"])
        return [label, gap, value]

    def text(self) -> str:
        r = self.r
        parts: list[str] = []
        for _ in range(r.randrange(1, 14)):
            roll = r.random()
            if roll < 0.25:
                parts += self.pair()
            elif roll < 0.45:
                parts += [self.label(), r.choice(SEPS), self.token()]
            elif roll < 0.6:
                parts.append(self.label())
            elif roll < 0.8:
                parts.append(self.token())
            else:
                parts.append(r.choice(SEPS))
            if r.random() < 0.7:
                parts.append(r.choice(SEPS))
        return "".join(parts)


def random_texts(n: int, seed: int) -> list[str]:
    mixer = Mixer(seed)
    return [mixer.text() for _ in range(n)]


def adversarial() -> list[str]:
    key, seed = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "JBSWY3DPEHPK3PXPJBSWY3DP"
    token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDfAkEtOkEnFoRtEsTs0nLy" * 2
    out = []
    for word in ("secret", "seed", "totp", "otp_key", "mfa-key", "code", "passcode", "otp"):
        for pad in (0, 1, 39, 40, 41):
            for side in ("x", "_", "-", "é", "数"):
                label = side * pad + word
                out += [
                    f"{label}={key}",
                    f"{label}: {seed}",
                    f'"{label}": "123456"',
                    f"{label} 654321",
                    f"a {label}={key}\r\n",
                    f"{label}",
                    f"{label}{side * pad}: {seed}",
                ]
    for pad in (0, 29, 30, 31):
        out += [f"{'a' * pad}SessionToken={token}", f"{'-' * pad}security_token: {token}"]
    out += [
        "secret",
        "SECRET=",
        f"secret={key}",
        f"{key}",
        f"secret\n{key}",
        f"ſecret={key}",  # (?i) matches ſ to s; str.lower() does not: the gate says no
        f"\u212aSecret {key}",
        f"se\u212aret={key}",
        f"toKen: x\nSessionTo\u212aen={token}",
        f"İseed: {seed} seed",
        f"sessıon_token={token} token",
        f"totp_seed=\\u0022{seed}\\u0022",
        f'{{"SecretAccessKey": "{key[:20]}\\/{key[21:]}"}}',
        f"SecretAccessKey%3D{key.replace('/', '%2F')}",
        f"secret&#61;{key.replace('/', '&#x2F;')}",
        "\\\\\\\\\\nsecret\\\\u002b\\\\\\x3d%2b&#43;&#x2f;" * 3,
        "MFA code: 123456\r\nerror code: 654321\r\ncode\r\n111111",
        "AuthenticationCode1=123456&AuthenticationCode2=654321",
        "secretsecretsecret" * 10 + f"={key}",
        "secret_" * 20 + f"={key}",
        f"x{'secret' * 8}: {seed}",
        f"totp{seed}totp={seed}totp",
        f"{'mfa' * 30}_key: {seed}",
        f"code{'1' * 6}",
        "passcode123456 passcode 123456 otp:123456 otp 1234567 otp 12345",
        f"SessionToken={token * 60}\nsecurity_token: {token * 60}==",  # far past any window
        f"totp_seed: {'ABCDEFGH234567' * 400}",
        f"\ud800secret={key} \udfff totp: {seed}",  # lone surrogates
    ]
    return out


# --- the Unicode facts the fast search relies on (every code point) -----------------------------


def test_case_insensitive_word_characters_are_the_plain_ones() -> None:
    plain = [m.start() for m in re.finditer(r"[\w-]", ALL_CHARS)]
    folded = [m.start() for m in re.finditer(r"(?i:[\w-])", ALL_CHARS)]
    assert plain == folded


def test_folding_makes_every_case_insensitive_letter_match_a_plain_one() -> None:
    """Where (?i) matches an ASCII letter, the folded text has that letter (so a keyword's
    (?i) match is a plain match there), one byte a character; and those characters are word
    characters (a label's run holds them)."""
    folded = secrets._ascii(ALL_CHARS, secrets._FOLD_TO_ASCII).lower()
    assert len(folded) == len(ALL_CHARS)
    for letter in string.ascii_lowercase:
        for m in re.finditer(f"(?i:{letter})", ALL_CHARS):
            assert folded[m.start()] == ord(letter), hex(ord(m.group()))
            assert re.fullmatch(r"[\w-]", m.group())


def test_the_gates_see_what_str_lower_makes() -> None:
    """``_Search.lower()`` is ``str.lower()`` with each character outside ASCII as ``?``."""
    lowered = ALL_CHARS.lower()
    expected = "".join(c if c.isascii() else "?" for c in lowered).encode()
    assert secrets._Search(ALL_CHARS).lower() == expected
    sigma = "ΟΔΟΣ σ secret ΣΕΚΡΕΤ"  # str.lower() reads a final sigma in context
    assert secrets._Search(sigma).lower() == sigma.lower().encode("ascii", "replace")


def test_the_labelled_patterns_are_the_ones_the_keywords_were_read_from() -> None:
    """The keywords and reaches of ``_Labelled`` were read from these patterns: a change to
    one must come with a look at its ``_Labelled``."""
    assert secrets._SECRET_LABEL == r"(?P<label>(?i:[\w-]{0,40}secret[\w-]{0,40}))"
    assert secrets._TOKEN_LABEL == r"(?P<label>(?i:[\w-]{0,30}(?:session|security)[_-]?token))"
    assert secrets._SEED_LABEL == (
        r"(?P<label>(?i:[\w-]{0,40}(?:seed|secret|totp|hotp|otp[_-]?key|mfa[_-]?key)[\w-]{0,40}))"
    )
    assert secrets._RE_CODE.pattern.startswith(
        r"(?<![\w-])(?P<label>(?i:[\w-]{0,40}?(?:code|otp|passcode)[12]?))"
    )
    assert {name: spec.reach for name, spec in SPECS.items()} == {
        "key": 40,
        "token": 30,
        "seed": 40,
        "code": 40,
    }
    for spec in SPECS.values():
        assert spec.pattern.pattern.startswith(secrets._WORD_START)


# --- method by method ---------------------------------------------------------------------------


def test_methods_match_finditer_on_the_scan_corpus() -> None:
    texts = [s.text for s in legitimate() + corpus_secrets()]
    assert [t for t in texts if method_differences(t)] == []


def test_methods_match_finditer_on_random_mixes() -> None:
    texts = random_texts(3000, seed=11)
    assert [(t, d) for t in texts if (d := method_differences(t))] == []
    # not vacuous: every labelled pattern matches often, some with long labels
    for name, spec in SPECS.items():
        matched = [m for t in texts for m in spec.pattern.finditer(t)]
        assert len(matched) > 100, name
        assert max(len(m.group("label")) for m in matched) >= 40, name


def test_methods_match_finditer_on_adversarial_strings() -> None:
    assert [(t, d) for t in adversarial() if (d := method_differences(t))] == []


def test_methods_match_finditer_on_the_fleet_text() -> None:
    for name, raw in fleet_files(120).items():
        assert method_differences(raw.decode()) == [], name


# --- end to end: findings and redaction ---------------------------------------------------------


def test_findings_are_the_plain_scans_on_the_scan_corpus() -> None:
    samples = legitimate() + corpus_secrets()
    fps = [fingerprint(s.secret) for s in samples if s.secret][::3]
    for sample in samples:
        fast, plain = scan_both(sample.text)
        assert fast == plain, sample.case
        fast, plain = scan_both(sample.text, fingerprints=fps, known=[sample.secret[:12]])
        assert fast == plain, sample.case


def test_findings_are_the_plain_scans_on_random_mixes() -> None:
    r = random.Random(5)
    texts = random_texts(3000, seed=23)
    found = 0
    kinds: set[str] = set()
    for text in texts:
        runs = re.findall(r"[A-Za-z0-9/+=]{16,}", text)
        fps = [fingerprint(t) for t in runs if r.random() < 0.3]
        label = r.choice([None, None, "SecretAccessKey", "mfa_code", "name"])
        fast, plain = scan_both(text, fingerprints=fps, label=label)
        assert fast == plain, text
        found += bool(fast)
        kinds.update(f.kind for f in fast)
    assert found > 1000
    assert kinds == set(secrets.KINDS) - {"known-secret"}


def test_findings_are_the_plain_scans_on_adversarial_strings() -> None:
    for text in adversarial():
        fast, plain = scan_both(text)
        assert fast == plain, text
        for label in ("secret", "SessionToken", "code"):
            fast, plain = scan_both(text, label=label)
            assert fast == plain, (label, text)


def test_redacted_fleet_files_are_the_plain_scans() -> None:
    """The fleet audit's files as they are, and with secrets planted in them."""
    mixer = Mixer(31)
    for name, raw in fleet_files(200).items():
        fast, plain = redact_both(raw, name)
        assert fast == plain, name
        text = raw.decode()
        cuts = sorted(mixer.r.randrange(len(text)) for _ in range(60))
        pieces, pos = [], 0
        for cut in cuts:
            pieces += [text[pos:cut], mixer.text()]
            pos = cut
        planted = ("".join(pieces) + text[pos:]).encode()
        fast, plain = redact_both(planted, name)
        assert fast == plain, name
        assert fast[1], name  # the planted secrets are found


def test_redacted_text_notebooks_and_binaries_are_the_plain_scans() -> None:
    mixer = Mixer(41)
    texts = random_texts(600, seed=43)
    for i in range(0, len(texts), 6):
        chunk = texts[i : i + 6]
        tokens = [t for text in chunk for t in re.findall(r"[A-Za-z0-9/+=]{16,}", text)]
        kw = {"known": tokens[:1], "fingerprints": [fingerprint(t) for t in tokens[1::4]]}
        fast, plain = redact_both("\n".join(chunk).encode(), "out.txt", **kw)
        assert fast == plain
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "id": f"c{k}",
                    "metadata": {mixer.label(): text[:40]},
                    "source": text.splitlines(keepends=True),
                    "outputs": [
                        {"output_type": "stream", "name": "stderr", "text": [text, "\n"]},
                        {"output_type": "execute_result", "data": {"text/plain": text}},
                    ],
                    "execution_count": 1,
                }
                for k, text in enumerate(chunk)
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        raw = json.dumps(nb, indent=1).encode()
        fast, plain = redact_both(raw, "step.ipynb", **kw)
        assert fast == plain
        fast, plain = redact_both(b"\0\x01" + "\n".join(chunk).encode(), "blob.bin", **kw)
        assert fast == plain


def test_file_findings_are_the_plain_scans_on_the_fleet_text() -> None:
    for name, raw in fleet_files(120).items():
        fast = file_findings(raw, name)
        with plain_scanner():
            assert file_findings(raw, name) == fast, name
