"""The daemon's processes: identity, pid file, spawning as a user, and stopping a whole tree.

Exports: ProcessIdentity, PidFileError, read_pid_file, write_pid_file, remove_pid_file,
identity_of, is_running, executable, find_tree, tree_stats, age_seconds, started_at, spawn, signal_processes,
wait_gone, DaemonUser, lookup_user.

A process is ours only if its pid, start time (clock ticks since boot), boot id and executable
all match what start recorded: a pid reused by another program after a crash is never taken
for the daemon, and never signalled.  Processes are read straight from /proc: this is the
recurring monitor's path, and psutil's import alone costs more than all of it.
"""

from __future__ import annotations

import os
import stat
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import subprocess
    from typing import Dict, Iterable, List, Optional, Sequence

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
_DELETED = " (deleted)"


class ProcStat:
    """The fields of /proc/PID/stat the agent needs."""

    __slots__ = ("pid", "ppid", "session", "start_ticks", "state")

    def __init__(self, pid: int, state: str, ppid: int, session: int, start_ticks: int) -> None:
        self.pid = pid
        self.state = state
        self.ppid = ppid
        self.session = session
        self.start_ticks = start_ticks

    @property
    def alive(self) -> bool:
        # Z: a zombie waits to be reaped (this machine's PID 1 takes ~2 s); X: dead.
        return self.state not in ("Z", "X")


def read_stat(pid: int) -> Optional[ProcStat]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as src:
            data = src.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        session=int(fields[3]),
        start_ticks=int(fields[19]),
    )


def _boot_id() -> str:
    with open(BOOT_ID_FILE, encoding="ascii") as src:
        return src.read().strip()


def executable(pid: int) -> str:
    """The program pid runs ('' when it cannot be read)."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
    # An interpreter upgraded in place while the daemon runs reads as "<path> (deleted)":
    # the daemon is still ours.
    return path[: -len(_DELETED)] if path.endswith(_DELETED) else path


class ProcessIdentity:
    """What start records of the daemon, to recognise it later."""

    __slots__ = ("boot_id", "exe", "pid", "start_ticks")

    def __init__(self, pid: int, start_ticks: int, boot_id: str, exe: str) -> None:
        self.pid = pid
        self.start_ticks = start_ticks
        self.boot_id = boot_id
        self.exe = exe

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessIdentity) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(self.serialize())

    def __repr__(self) -> str:
        return f"ProcessIdentity({self.serialize().strip()!r})"

    def serialize(self) -> str:
        return f"{self.pid} {self.start_ticks} {self.boot_id} {self.exe}\n"

    @classmethod
    def parse(cls, text: str) -> ProcessIdentity:
        parts = text.strip().split(" ", 3)
        if len(parts) != 4:
            raise ValueError("expected 'pid start-time boot-id executable'")
        pid, start_ticks = int(parts[0]), int(parts[1])
        if pid <= 1 or start_ticks < 0:
            raise ValueError(f"impossible pid {pid}")
        return cls(pid, start_ticks, parts[2], parts[3])


def identity_of(pid: int) -> Optional[ProcessIdentity]:
    st = read_stat(pid)
    if st is None or not st.alive:
        return None
    return ProcessIdentity(pid, st.start_ticks, _boot_id(), executable(pid))


def is_running(recorded: ProcessIdentity) -> bool:
    """True while the process start recorded is alive (not a zombie, not a reused pid)."""
    st = read_stat(recorded.pid)
    if st is None or not st.alive or st.start_ticks != recorded.start_ticks:
        return False
    if recorded.boot_id != _boot_id():
        return False
    return executable(recorded.pid) == recorded.exe


def find_tree(leader: ProcessIdentity) -> List[int]:
    """Live processes of the daemon's tree: the leader and everything it started."""
    return [st.pid for st in tree_stats(leader)]


def tree_stats(leader: ProcessIdentity) -> List[ProcStat]:
    """The /proc/PID/stat of every live process of the daemon's tree, sorted by pid.

    The daemon runs in a session of its own, so its children, and their orphans after the
    leader died, keep the leader's pid as their session id; the start time rules out a later
    session that happens to reuse the pid.  Descendants that left the session are found
    through their parent links.
    """
    current = read_stat(leader.pid)
    if current is not None and current.alive and not is_running(leader):
        # The pid belongs to another program now.  Linux keeps a pid allocated while any
        # process still uses it as session id, so that program could only get the pid after
        # the last member of our session was gone: nothing of ours is left.
        return []
    stats: Dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None and st.alive and st.start_ticks >= leader.start_ticks:
                stats[st.pid] = st
    members = {pid for pid, st in stats.items() if st.session == leader.pid}
    if leader.pid in stats:
        members.add(leader.pid)
    grew = True
    while grew:
        new = {pid for pid, st in stats.items() if st.ppid in members and pid not in members}
        members |= new
        grew = bool(new)
    return [stats[pid] for pid in sorted(members)]


def _uptime() -> float:
    with open("/proc/uptime", encoding="ascii") as src:
        return float(src.read().split()[0])


def age_seconds(start_ticks: int) -> float:
    """How long ago a process with this start time (clock ticks since boot) started."""
    return max(0.0, _uptime() - start_ticks / os.sysconf("SC_CLK_TCK"))


def started_at(start_ticks: int) -> float:
    """The wall-clock time (epoch seconds) at which a process with this start time started."""
    return time.time() - age_seconds(start_ticks)


def signal_processes(pids: Iterable[int], min_start_ticks: int, sig: int) -> List[int]:
    """Send sig to each pid that is still the process we saw; returns the pids signalled.

    A pidfd pins the process before its start time is checked, so the signal cannot reach a
    process that took over the pid in between.
    """
    import signal  # noqa: PLC0415 - start and stop only: its enums cost a monitor ~3 ms

    signalled = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):
            fd = -1  # kernel older than 5.3: fall back to a plain kill after the check
        try:
            st = read_stat(pid)
            if st is None or not st.alive or st.start_ticks < min_start_ticks:
                continue
            if fd >= 0:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
            signalled.append(pid)
        except ProcessLookupError:
            continue
        finally:
            if fd >= 0:
                os.close(fd)
    return signalled


def wait_gone(leader: ProcessIdentity, deadline: float, poll_s: float = 0.05) -> List[int]:
    """Wait until the tree is gone or the monotonic deadline passed; returns what is left."""
    while True:
        left = find_tree(leader)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll_s)


class PidFileError(Exception):
    """A pid file that exists but cannot be trusted."""


def read_pid_file(path: str) -> Optional[ProcessIdentity]:
    """The identity start recorded; None when there is no pid file.

    Raises PidFileError for a file that is a symlink, not a regular file, writable by others,
    owned by another user, or that does not hold an identity: such a file may have been
    planted to make the agent signal an arbitrary process.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if os.path.islink(path):
            raise PidFileError(f"pid file {path} is a symbolic link") from None
        raise PidFileError(f"cannot read pid file {path}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PidFileError(f"pid file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise PidFileError(f"pid file {path} is owned by uid {info.st_uid}, not by us")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PidFileError(f"pid file {path} is writable by others")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return ProcessIdentity.parse(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise PidFileError(f"pid file {path} holds no process identity ({err})") from None


def _check_directory(directory: str) -> None:
    # PermissionError, an OSError: every writer (pid file, token and config caches) already
    # turns an OSError into a reason or a warning, never into an internal error.
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{directory} is not a directory")
    open_to_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if open_to_others and not info.st_mode & stat.S_ISVTX:
        raise PermissionError(f"directory {directory} is writable by others without the sticky bit")
    if info.st_uid not in (0, os.geteuid()):
        raise PermissionError(f"directory {directory} is owned by uid {info.st_uid}")


def write_atomically(path: str, data: str, mode: int) -> None:
    """Replace path with data: readers see the old or the new content, never a part.

    Raises OSError, PermissionError when the directory is not safe (others may write to it).
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    _check_directory(directory)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        os.write(fd, data.encode("utf-8"))
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


def write_pid_file(path: str, identity: ProcessIdentity) -> None:
    write_atomically(path, identity.serialize(), 0o644)


def remove_pid_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class DaemonUser:
    """The account the daemon runs as."""

    __slots__ = ("gid", "groups", "home", "name", "uid")

    def __init__(self, name: str, uid: int, gid: int, home: str, groups: Sequence[int]) -> None:
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.groups = groups


def lookup_user(name: str) -> Optional[DaemonUser]:
    import pwd  # noqa: PLC0415 - start and validate only

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return DaemonUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, groups)


def daemon_environment(user: DaemonUser, inherit: Dict[str, str]) -> Dict[str, str]:
    """A clean environment: the agent's own (OCF_RESKEY_os_password among it) never leaks."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": user.home or "/",
        "USER": user.name,
        "LOGNAME": user.name,
    }
    for key in ("LANG", "LC_ALL", "TZ"):
        if key in inherit:
            env[key] = inherit[key]
    return env


def spawn(
    argv: Sequence[str], user: DaemonUser, output_path: str, environ: Dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start the daemon as user in a session of its own, its output appended to output_path.

    Popen returns once the program is executed (or raises if it cannot be), so the identity
    read right after describes the daemon, not a half-forked agent.
    """
    import subprocess  # noqa: PLC0415 - start only; it costs the monitor 9 ms

    switch = os.geteuid() == 0 and user.uid != os.geteuid()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(output_path, flags, 0o640)
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
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
    finally:
        os.close(out)


def tail(path: str, lines: int = 5, max_bytes: int = 8192) -> List[str]:
    """The last non-empty lines of a file: what a daemon printed before it died."""
    try:
        with open(path, "rb") as src:
            src.seek(0, os.SEEK_END)
            size = src.tell()
            src.seek(max(0, size - max_bytes))
            data = src.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]


def signal_name(sig: int) -> str:
    import signal  # noqa: PLC0415

    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)
