"""Files the agent trusts: the pid file and the per-resource state files in HA_RSCTMP.

Exports: UntrustedFile, read_trusted, write_atomically, check_directory, read_json, write_json,
state_path.

One set of rules for all of them, because a planted file could make the agent signal an
arbitrary process or use a token someone else chose: a file is read only when it is a regular
file (not a symlink, FIFO or device), owned by us, and writable by nobody else (for secrets:
readable by nobody else either); it is written by an atomic rename in a directory that only
root or we can change.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

MAX_SIZE = 65536  # these files are small; a larger one is not ours


class UntrustedFile(Exception):
    """A file that exists but must not be trusted (or cannot be read); the message says why."""


def read_trusted(path: str, what: str, private: bool = False) -> bytes | None:
    """The content of a trusted file; None when it does not exist.

    private: the file holds a secret, so nobody else may read it either (mode 0600).
    """
    try:
        # O_NONBLOCK: a FIFO planted in its place must not hang the agent.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if os.path.islink(path):
            raise UntrustedFile(f"{what} {path} is a symbolic link") from None
        raise UntrustedFile(f"cannot read {what} {path}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedFile(f"{what} {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UntrustedFile(f"{what} {path} is owned by uid {info.st_uid}, not by us")
        if private and info.st_mode & 0o077:
            raise UntrustedFile(f"{what} {path} has mode {stat.S_IMODE(info.st_mode):04o}, not 0600")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UntrustedFile(f"{what} {path} is writable by others")
        return os.read(fd, MAX_SIZE)
    finally:
        os.close(fd)


def check_directory(directory: str) -> None:
    """PermissionError unless directory is a directory that only root or we can change (or
    that has the sticky bit, like /tmp).  A symlink to such a directory (/var/run) is fine:
    changing the link needs write access to its own directory."""
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{directory} is not a directory")
    open_to_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if open_to_others and not info.st_mode & stat.S_ISVTX:
        raise PermissionError(f"{directory} is writable by others (no sticky bit)")
    if info.st_uid not in (0, os.geteuid()):
        raise PermissionError(f"directory {directory} is owned by uid {info.st_uid}")


def write_atomically(path: str, data: bytes, mode: int) -> None:
    """Replace path with data: readers see the old or the new content, never a part.

    Raises OSError (PermissionError when the directory is not safe).
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    check_directory(directory)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)  # replaces a symlink itself, never its target
    except BaseException:
        os.unlink(tmp)  # path is a directory, say: no copy of a token left beside it
        raise


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_json(path: str) -> dict[str, Any] | None:
    """A private JSON state file's object; None when it is missing, untrusted or corrupt (the
    next write replaces it)."""
    try:
        data = read_trusted(path, "state file", private=True)
        value = json.loads(data) if data is not None else None
    except (UntrustedFile, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: str, value: dict[str, Any]) -> None:
    """Store a private (0600) JSON state file atomically.  Raises OSError."""
    write_atomically(path, json.dumps(value, sort_keys=True).encode(), 0o600)


def state_path(rsctmp: str, instance: str, suffix: str) -> str:
    """A per-resource state file in HA_RSCTMP (the token cache, the config cache)."""
    safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in instance)
    return os.path.join(rsctmp, f"cinder-ocf-{safe}.{suffix}")
