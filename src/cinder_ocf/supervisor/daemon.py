"""Starting the daemon: its executable, its user, its environment, its output.

Exports: DaemonUser, lookup_user, find_executable, spawn, tail, describe_exit, DEFAULT_PATH.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import NamedTuple

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DaemonUser(NamedTuple):
    """The account the daemon runs as."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]


def lookup_user(name: str) -> DaemonUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return DaemonUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, groups)


def find_executable(name: str, path: str) -> str | None:
    """name, or where PATH has it, if it is an executable file (shutil.which would also
    take a name with a slash relative to the agent's working directory)."""
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    for directory in (path or DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def daemon_environment(user: DaemonUser, inherit: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: the agent's own (OCF_RESKEY_os_password among it) never leaks."""
    env = {"PATH": DEFAULT_PATH, "HOME": user.home or "/", "USER": user.name, "LOGNAME": user.name}
    for key in ("LANG", "LC_ALL", "TZ"):
        if key in inherit:
            env[key] = inherit[key]
    return env


def open_output(path: str) -> int:
    """The daemon's output file, appended to.  OSError when it cannot be opened."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(path, flags, 0o640)
    os.set_blocking(fd, True)
    return fd


def spawn(
    argv: Sequence[str], user: DaemonUser, output_fd: int, environ: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start the daemon as user in a session of its own, its output to output_fd.

    Popen returns once the program is executed (or raises if it cannot be), so the identity
    read right after describes the daemon, not a half-forked agent.
    """
    switch = os.geteuid() == 0 and user.uid != os.geteuid()
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=output_fd,
        stderr=subprocess.STDOUT,
        close_fds=True,
        start_new_session=True,
        cwd="/",
        env=daemon_environment(user, environ),
        user=user.uid if switch else None,
        group=user.gid if switch else None,
        extra_groups=list(user.groups) if switch else None,
        umask=0o022,
    )


def tail(path: str, lines: int = 5, max_bytes: int = 8192) -> list[str]:
    """The last non-empty lines of a file: what a daemon printed before it died."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - max_bytes), os.SEEK_SET)
        data = os.read(fd, max_bytes)
    except OSError:
        return []
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]


def describe_exit(status: int | None) -> str:
    if status is None:
        return "exited"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        return f"was killed by {name}"
    return f"exited with status {status}"
