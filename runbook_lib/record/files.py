"""The file discipline the run record and the lease store share: every file 0600, written
whole through a temporary file and ``os.replace`` (never torn), fsynced with its directory;
every directory 0700 whatever the umask; files opened and read without following a symbolic
link (``O_NOFOLLOW``: a planted link is refused, never written or read through); exclusive
``flock`` on a lock file; the sha256 of a file as read."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import RecordError

FILE_MODE = 0o600
DIR_MODE = 0o700


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


def stage(path: Path, data: bytes) -> Path:
    """A temporary file beside ``path`` holding ``data`` (0600, fsynced), to ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(Path(tmp))
        raise
    return Path(tmp)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; mode 0600."""
    tmp = stage(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_dir(path.parent)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def sha256_fd(fd: int) -> tuple[str, int]:
    """(sha256 hex, size) of the file open at ``fd``, read from its start."""
    digest = hashlib.sha256()
    size = 0
    while block := os.pread(fd, 1 << 20, size):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of the file at ``path``, never through a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path``; OSError for a link (ELOOP) or anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return read_fd(fd)
    finally:
        os.close(fd)


def make_dir(path: Path) -> bool:
    """Create ``path`` 0700 (whatever the umask); True if it was created here."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir() or path.is_symlink():
            raise RecordError(f"{path} exists and is not a directory") from None
        return False
    os.chmod(path, DIR_MODE)
    return True


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 whatever the umask."""
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        make_dir(directory)


def open_nofollow(path: Path, flags: int, what: str) -> int:
    """``os.open`` that never follows a symbolic link at ``path``: RecordError instead."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, FILE_MODE)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RecordError(
                f"Refused to {what} {path}: it is a symbolic link (the record never writes or "
                "reads through one; remove it and find out who put it there)"
            ) from err
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecordError(f"Refused to {what} {path}: not a regular file")
    os.set_blocking(fd, True)
    return fd


@contextmanager
def locked(path: Path) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600 if missing); yields the fd.

    The fd is opened with O_APPEND, so it can be written to as the append-only file itself, and
    with O_NOFOLLOW: a symbolic link planted at ``path`` is refused, never written through.
    """
    fd = open_nofollow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "write")
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def read_fd(fd: int) -> bytes:
    """Everything in the file open at ``fd``, from its start (``pread``: the offset stays)."""
    chunks: list[bytes] = []
    pos = 0
    while block := os.pread(fd, 1 << 20, pos):
        chunks.append(block)
        pos += len(block)
    return b"".join(chunks)
