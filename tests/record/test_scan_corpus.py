"""The scanner on its corpus: no legitimate value flagged, no secret missed, every secret found
exactly (fingerprints) in every context, whatever the escaping."""

from __future__ import annotations

import json
import re
import string
from collections import Counter

import pytest

from runbook_lib.record.secrets import KINDS, findings, fingerprint, fingerprinted
from runbook_sandbox import _state

from .scan_corpus import B32, B64, Sample, legitimate, secrets

LEGITIMATE = legitimate()
SECRETS = secrets()


def found_at(sample: Sample) -> bool:
    """A finding of the sample's kind covers its secret (or, not shown verbatim: any finding
    of its kind, e.g. a seed inside a percent-encoded otpauth URI)."""
    hits = findings(sample.text)
    pos = sample.text.find(sample.secret)
    if pos < 0:
        return any(f.kind == sample.kind for f in hits)
    return any(
        f.kind == sample.kind and f.start <= pos and f.end >= pos + len(sample.secret) for f in hits
    )


def test_the_corpus_is_big_and_varied() -> None:
    assert len(LEGITIMATE) >= 1000
    assert len({s.case for s in LEGITIMATE}) >= 50
    kinds = Counter(s.kind for s in SECRETS)
    assert set(kinds) == set(KINDS) - {"known-secret"}
    assert min(kinds.values()) >= 12
    seeds = Counter(len(s.secret) for s in SECRETS if s.kind == "authenticator-secret")
    assert set(seeds) == {16, 20, 26, 32}


def test_the_corpus_has_the_sandboxs_shapes() -> None:
    """The corpus generates what the sandbox makes (runbook_sandbox._state)."""
    for _ in range(20):
        assert re.fullmatch(f"[{re.escape(B64)}]{{40}}", _state.new_secret())
        assert re.fullmatch(f"ASIA[{B32}]{{16}}", _state.new_key_id("ASIA"))
        assert re.fullmatch(f"[{B32}]{{32}}", _state.new_totp_seed())
    assert set(B64) == set(string.ascii_letters + string.digits + "+/")


def test_no_false_positive_on_legitimate_values() -> None:
    flagged = [
        (s.case, [f"{f.kind}: {s.text[f.start : f.end]}" for f in findings(s.text)])
        for s in LEGITIMATE
        if findings(s.text)
    ]
    assert flagged == []


def test_no_miss_on_secrets_in_context() -> None:
    missed = [s.case for s in SECRETS if not found_at(s)]
    assert missed == []


def test_findings_never_hold_the_value() -> None:
    for sample in SECRETS:
        for finding in findings(sample.text):
            assert sample.secret not in str(finding)


@pytest.mark.parametrize("kind", ["secret-access-key", "session-token"])
def test_fingerprints_find_each_credential_however_it_is_written(kind: str) -> None:
    """Exact matching: in every context, JSON-escaped twice, percent-encoded, with ``\\/``;
    and a fingerprint never matches anything else."""
    samples = [s for s in SECRETS if s.kind == kind]
    others = {fingerprint(s.secret) for s in SECRETS if s.kind != kind}
    for sample in samples:
        fps = {fingerprint(sample.secret)}
        twice = json.dumps(json.dumps({"log": sample.text}))
        for text in (sample.text, twice, twice.replace("/", "\\/")):
            hits = fingerprinted(text, fps)
            assert hits and all(h.kind == kind for h in hits), (sample.case, text[:80])
        assert not fingerprinted(sample.text, others)
    for sample in LEGITIMATE[:300]:
        assert not fingerprinted(sample.text, {fingerprint(s.secret) for s in samples})


def test_a_fingerprint_finds_what_no_pattern_would() -> None:
    """A credential of the run printed where nothing says what it is, e.g. glued into a path
    or a sentence: only its fingerprint finds it."""
    secret = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"  # reads like nothing random
    text = f"wrote it to /tmp/x_{secret} and moved on"
    assert findings(text) == []
    hits = findings(text, fingerprints={fingerprint(secret)})
    assert [h.kind for h in hits] == ["secret-access-key"]
    assert text[hits[0].start : hits[0].end] == secret
