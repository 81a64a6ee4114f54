"""Small per-resource state files in HA_RSCTMP: the token and cinder.conf caches.

Exports: read_state, write_state, fingerprint, StateFileError.

They hold secrets (a token), so they are written 0600 by an atomic rename and read only when
they are regular files owned by us that nobody else can read or write: anything else is
ignored (and then replaced), never trusted.  The format is ``key=value`` lines: json's import
costs the recurring monitor 6 ms.
"""

from __future__ import annotations

import os
import stat

from cinder_ocf.process import write_atomically

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Dict, Iterable, Mapping


class StateFileError(Exception):
    """A state file that exists but must not be trusted."""


def read_state(path: str) -> Dict[str, str]:
    """The key/value pairs of a state file; {} when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise StateFileError(f"cannot open {path}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise StateFileError(f"{path} is owned by uid {info.st_uid}, not by us")
        if info.st_mode & 0o077:
            raise StateFileError(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}, not 0600")
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateFileError(f"{path} is not text") from None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            raise StateFileError(f"{path} is corrupt")
        values[key] = value
    return values


def write_state(path: str, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        if "\n" in value or "=" in key or "\n" in key:
            raise ValueError(f"unstorable state entry {key!r}")
    write_atomically(path, "".join(f"{k}={v}\n" for k, v in values.items()), 0o600)


def fingerprint(params: Mapping[str, str], files: Iterable[str]) -> str:
    """A digest of everything a cached fact was derived from: the resource's parameters and the
    identity and modification time of the files read.  Any change invalidates the cache."""
    try:
        # The built-in BLAKE2: hashlib would load OpenSSL, ~2 ms and ~3.5 MiB for every monitor.
        from _blake2 import blake2b  # noqa: PLC0415
    except ImportError:  # an interpreter built without it
        from hashlib import blake2b  # noqa: PLC0415

    digest = blake2b(digest_size=32)
    for key in sorted(params):
        digest.update(f"{key}\0{params[key]}\0".encode("utf-8", "surrogateescape"))
    for path in files:
        try:
            info = os.stat(path)
            digest.update(f"{path}\0{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}\0".encode())
        except OSError as err:
            digest.update(f"{path}\0{err.errno}\0".encode())
    return digest.hexdigest()
