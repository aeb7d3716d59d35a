"""The repository stands on its own: nothing points outside it (``../shared`` is the authors'
workspace, which a clone does not have), every relative link in the docs leads to a file the
repository tracks, and docs/procedure.md carries the procedure with the console's labels in both
languages and AWS's documentation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto: ...


def tracked() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    )
    return [name for name in done.stdout.decode("utf-8").split("\0") if name]


def docs() -> list[str]:
    return [
        name
        for name in tracked()
        if name in ("README.md", "ARCHITECTURE.md", "CHANGELOG.md")
        or (name.startswith("docs/") and name.endswith(".md"))
    ]


def test_no_tracked_file_outside_tests_points_to_shared() -> None:
    offenders = []
    for name in tracked():
        if name.startswith("tests/"):
            continue
        path = REPO / name
        if not path.is_file():
            continue
        if b"../shared" in path.read_bytes():
            offenders.append(name)
    assert offenders == []


def relative_links(name: str) -> list[str]:
    text = (REPO / name).read_text(encoding="utf-8")
    return [
        target
        for target in LINK.findall(text)
        if not EXTERNAL.match(target) and not target.startswith("#")
    ]


def test_every_relative_link_in_the_docs_resolves_to_a_tracked_file() -> None:
    files = set(tracked())
    names = docs()
    assert {"README.md", "ARCHITECTURE.md", "docs/procedure.md"} <= set(names)
    broken = []
    for name in names:
        for target in relative_links(name):
            path = target.split("#", 1)[0]
            resolved = PurePosixPath(name).parent / path
            parts: list[str] = []
            for part in resolved.parts:
                if part == "..":
                    if not parts:
                        broken.append(f"{name}: {target} (outside the repository)")
                        break
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            else:
                joined = "/".join(parts)
                if joined not in files and not any(f.startswith(joined + "/") for f in files):
                    broken.append(f"{name}: {target}")
    assert broken == []


def test_the_link_check_sees_links() -> None:
    """It reads the links it should (else it would pass on anything)."""
    assert "docs/procedure.md" in relative_links("README.md")
    assert "docs/procedure.md" in relative_links("ARCHITECTURE.md")
    assert "docs/report.png" in relative_links("README.md")


PROCEDURE_LABELS = {
    "「安全憑証」": "Security credentials",
    "「多重要素驗証(MFA)」": "Multi-factor authentication (MFA)",
    "「移除」": "Remove",
    "驗証碼": "verification code",
    "跳過": "skip",
}
AWS_DOCS = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_mfa.html",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_mfa_disable.html"
    "#deactive-mfa-console",
)


def test_the_procedure_page_quotes_the_console_labels_beside_the_english_ones() -> None:
    text = " ".join((REPO / "docs" / "procedure.md").read_text(encoding="utf-8").split())
    for chinese, english in PROCEDURE_LABELS.items():
        where = text.find(chinese)
        assert where >= 0, chinese
        assert english in text[where : where + 120], (chinese, english)
    for step in range(6):
        assert f"**{step}." in text
    for notebook in ("00-preflight", "01-remove-device", "03-first-sign-in", "04-rebind"):
        assert f"`{notebook}`" in text


def test_the_procedure_page_has_the_aws_facts_and_documentation() -> None:
    text = (REPO / "docs" / "procedure.md").read_text(encoding="utf-8")
    for fact in (
        "sts:AssumeRoot",
        "IAMDeleteRootUserCredentials",
        "DeactivateMFADevice",
        "EnableMFADevice",
        "console-only",
        "e-mail",
    ):
        assert fact in text, fact
    for url in AWS_DOCS:
        assert url in text, url
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    architecture = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert all(url in readme and url in architecture for url in AWS_DOCS)
