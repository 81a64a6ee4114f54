"""The daemon's processes through psutil: identity, the pid file, the tree, signals, waiting.

Exports: ProcessIdentity, ProcessView, PidFileError, read_pid_file, write_pid_file, identity_of,
is_running, tree, forks, signal_tree, wait_gone, established_peers, PeersUnavailable, started_at,
own_age, boot_id.

A process is ours only if its pid, start time, boot id and executable all match what start
recorded: a pid reused by another program after a crash is never taken for the daemon, and
never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import psutil

from cinder_ocf import trusted
from cinder_ocf.openstack.broker import normal_ip

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Clock

Endpoint = tuple[str, int]

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"  # psutil has no boot id: it tells two boots apart
# A helper goes from fork to exec in well under a millisecond (vfork); a backend child counts
# only from this age, so every start waits for it once its children are up (0.3 s was ~0.2 s of
# each cinder-volume start).  A helper seen past it is dropped when it execs (checks/rpc.py).
FORK_SETTLE_S = 0.1


def boot_id() -> str:
    with open(BOOT_ID_FILE, encoding="ascii") as src:
        return src.read().strip()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_ticks(pid: int) -> int:
    """When process pid started, in clock ticks since boot, as /proc/PID/stat says.  Not
    psutil's epoch create_time alone: a clock step (NTP, an operator) moves that, and the daemon
    must stay ours through it.

    psutil adds the kernel's boot time in whole seconds (btime), which a slewing clock moves by
    one now and then, and a Process caches its create_time: so the create_time of a new object
    is taken between two reads of the boot time that agree, or the leader would be off by a
    second, "not ours", and a stop would leave it running.  Raises psutil.Error when pid is
    gone."""
    while True:
        boot = psutil.boot_time()
        created = psutil.Process(pid).create_time()
        if psutil.boot_time() == boot:
            return round((created - boot) * _CLOCK_TICKS)


class ProcessIdentity(NamedTuple):
    """What start records of the daemon, to recognise it later."""

    pid: int
    start_ticks: int
    boot_id: str
    exe: str

    def serialize(self) -> str:
        # The pid file's format since the first release: "pid start-ticks boot-id executable".
        return f"{self.pid} {self.start_ticks} {self.boot_id} {self.exe}\n"

    @classmethod
    def parse(cls, text: str) -> ProcessIdentity:
        parts = text.strip().split(" ", 3)
        if len(parts) != 4:
            raise ValueError("expected 'pid start-time boot-id executable'")
        pid, ticks = int(parts[0]), int(parts[1])
        if pid <= 1 or ticks < 0:
            raise ValueError(f"impossible pid {pid}")
        return cls(pid, ticks, parts[2], parts[3])


class PidFileError(Exception):
    """A pid file that exists but cannot be trusted."""


def _alive(proc: psutil.Process) -> bool:
    try:
        # A zombie waits to be reaped (this machine's PID 1 takes ~2 s): it runs nothing.
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def identity_of(pid: int) -> ProcessIdentity | None:
    try:
        proc = psutil.Process(pid)
        if not _alive(proc):
            return None
        return ProcessIdentity(pid, start_ticks(pid), boot_id(), proc.exe())
    except psutil.Error:
        return None


def matches(proc: psutil.Process, recorded: ProcessIdentity) -> bool:
    try:
        return (
            _alive(proc)
            and start_ticks(proc.pid) == recorded.start_ticks
            and recorded.boot_id == boot_id()
            and proc.exe() == recorded.exe
        )
    except psutil.Error:
        return False


def is_running(recorded: ProcessIdentity) -> bool:
    """True while the process start recorded is alive (not a zombie, not a reused pid)."""
    try:
        return matches(psutil.Process(recorded.pid), recorded)
    except psutil.Error:
        return False


def read_pid_file(path: str) -> ProcessIdentity | None:
    """The identity start recorded; None when there is no pid file.

    Raises PidFileError for a file that is a symlink, not a regular file, writable by others,
    owned by another user, or that does not hold an identity: such a file may have been
    planted to make the agent signal an arbitrary process.
    """
    try:
        data = trusted.read_trusted(path, "pid file")
    except trusted.UntrustedFile as err:
        raise PidFileError(str(err)) from None
    if data is None:
        return None
    try:
        return ProcessIdentity.parse(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise PidFileError(f"pid file {path} holds no process identity ({err})") from None


def write_pid_file(path: str, identity: ProcessIdentity) -> None:
    trusted.write_atomically(path, identity.serialize().encode(), 0o644)


def tree(leader: ProcessIdentity) -> list[psutil.Process]:
    """Live processes of the daemon's tree: the leader and everything it started, by pid.

    The daemon runs in a session of its own, so its children, and their orphans after the
    leader died, keep the leader's pid as their session id (psutil has no session id:
    os.getsid does it); the start time rules out a later session that happens to reuse the
    pid.  Descendants that left the session are found through their parent links.
    """
    try:
        current = psutil.Process(leader.pid)
        if _alive(current) and not matches(current, leader):
            # The pid belongs to another program now.  Linux keeps a pid allocated while any
            # process still uses it as session id, so that program could only get the pid
            # after the last member of our session was gone: nothing of ours is left.
            return []
    except psutil.Error:
        pass
    boot = psutil.boot_time()
    # A second of slack: process_iter's objects keep the create_time of the boot time they were
    # made with (see start_ticks).  Nothing that started before the leader can be in its
    # session, whose id is the leader's pid; the slack only keeps a member from being missed.
    earliest = leader.start_ticks / _CLOCK_TICKS - 1.005
    candidates: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["ppid", "create_time", "status"]):
        info = proc.info
        if info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) or info["create_time"] is None:
            continue
        if info["create_time"] - boot >= earliest:
            candidates[proc.pid] = proc
    members = set()
    for pid in candidates:
        try:
            if pid == leader.pid or os.getsid(pid) == leader.pid:
                members.add(pid)
        except OSError:
            continue
    grew = True
    while grew:
        new = {pid for pid, proc in candidates.items() if proc.info["ppid"] in members and pid not in members}
        members |= new
        grew = bool(new)
    return [candidates[pid] for pid in sorted(members)]


def forks(leader: ProcessIdentity, members: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The leader's direct children that run its own executable: the processes it forked
    (oslo.service: one per cinder-volume backend).

    A helper the daemon runs execs another program (os-brick runs grep at import, drivers run
    sudo): not a fork.  Between its fork and its exec a helper looks like one for an instant,
    so a child younger than FORK_SETTLE_S does not count yet.
    """
    found = []
    for proc in members:
        try:
            # A fresh Process for exe: psutil caches exe() per object, and process_iter hands
            # back the same objects, so a helper that exec'd would still show the daemon's.
            if (
                proc.info["ppid"] == leader.pid
                and age_seconds(proc) >= FORK_SETTLE_S
                and psutil.Process(proc.pid).exe() == leader.exe
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _age(ticks: int) -> float:
    # On the boot clock, as the kernel counts start times: psutil's boot time (and so its
    # create_time) has whole seconds only, which would age every process by up to a second.
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / _CLOCK_TICKS)


def age_seconds(proc: psutil.Process) -> float:
    """How long ago proc started."""
    return _age(start_ticks(proc.pid))


def own_age() -> float:
    """How long ago this process started (its fork, as Pacemaker's timeout counts it)."""
    try:
        return age_seconds(psutil.Process())
    except psutil.Error:
        return 0.0


def started_at(identity: ProcessIdentity) -> float:
    """The wall-clock time (epoch seconds) at which the recorded process started."""
    return time.time() - _age(identity.start_ticks)


def signal_tree(pids: Iterable[int], leader: ProcessIdentity, sig: int) -> list[int]:
    """Send sig to each pid that is still a process of the tree; returns the pids signalled.

    Through a pidfd, which psutil does not offer: the pidfd pins the process before its start
    time is checked, so the signal cannot reach a process that took over the pid in between.
    """
    signalled = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):
            fd = -1  # kernel older than 5.3: fall back to a plain kill after the check
        try:
            proc = psutil.Process(pid)
            if not _alive(proc) or start_ticks(pid) < leader.start_ticks:
                continue
            if fd >= 0:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
            signalled.append(pid)
        except (ProcessLookupError, psutil.Error):
            continue
        finally:
            if fd >= 0:
                os.close(fd)
    return signalled


def wait_gone(leader: ProcessIdentity, deadline: float, poll_s: float = 0.05) -> list[int]:
    """Wait until the tree is gone or the monotonic deadline passed; returns what is left."""
    while True:
        procs = tree(leader)
        if not procs:
            return []
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return [p.pid for p in procs]
        psutil.wait_procs(procs, timeout=min(poll_s, remaining))


class PeersUnavailable(Exception):
    """The connections of processes cannot be read (kind: denied)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def established_peers(pids: Iterable[int], kind: str = "tcp") -> dict[int, set[Endpoint]]:
    """The remote (ip, port) of every ESTABLISHED TCP connection of each of pids; kind "tcp4"
    reads the IPv4 table only (psutil's kinds).

    The kernel's connection table is read once, whatever the number of processes.
    """
    wanted = set(pids)
    peers: dict[int, set[Endpoint]] = {pid: set() for pid in wanted}
    try:
        connections = psutil.net_connections(kind=kind)
    except psutil.AccessDenied:
        raise PeersUnavailable("denied", "not allowed to read the connections of other processes") from None
    for conn in connections:
        if conn.pid in wanted and conn.status == psutil.CONN_ESTABLISHED and conn.raddr:
            peers[conn.pid].add((normal_ip(str(conn.raddr[0])), int(conn.raddr[1])))
    return peers


class ProcessView:
    """What runs of the daemon: the leader start recorded, orphans of a dead leader, or nothing.

    The tree is read on demand: it scans every process of the node, which a monitor of a
    running cinder-api need not pay for.
    """

    def __init__(self, pid_path: str, clock: Clock) -> None:
        self.pid_path = pid_path
        self.clock = clock
        self.recorded: ProcessIdentity | None = None
        self.running = False  # the leader itself is alive and ours
        self.note = ""  # why it is not running, for the log
        self._members: list[psutil.Process] | None = None
        self._forks: list[psutil.Process] | None = None
        self.refresh()

    def refresh(self) -> None:
        self._members = None
        self._forks = None
        self.running = False
        try:
            self.recorded = read_pid_file(self.pid_path)
        except PidFileError as err:
            self.recorded, self.note = None, f"{err}: ignored"
            self._members = []
            return
        if self.recorded is None:
            self.note = f"no pid file {self.pid_path}"
            self._members = []
            return
        self.running = is_running(self.recorded)
        self.note = "" if self.running else f"process {self.recorded.pid} recorded in {self.pid_path} is gone"

    @property
    def leader(self) -> ProcessIdentity:
        assert self.recorded is not None, "no leader recorded"
        return self.recorded

    @property
    def members(self) -> list[psutil.Process]:
        """Live processes of the leader's tree (the leader included when running)."""
        if self._members is None:
            self._members = tree(self.recorded) if self.recorded is not None else []
        return self._members

    @property
    def member_pids(self) -> list[int]:
        return [proc.pid for proc in self.members]

    def forks(self) -> list[psutil.Process]:
        """The leader's forks among the members, kept until refresh: two checks ask, and each
        child's executable and start time are read to find them."""
        if self._forks is None:
            self._forks = forks(self.leader, self.members) if self.recorded is not None else []
        return self._forks

    @staticmethod
    def still_runs(pid: int, ticks: int) -> bool:
        """pid is still the live process that started at `ticks` (see start_ticks)."""
        try:
            return _alive(psutil.Process(pid)) and start_ticks(pid) == ticks
        except psutil.Error:
            return False

    @staticmethod
    def start_ticks_of(procs: Iterable[psutil.Process]) -> dict[int, int]:
        """pid -> start ticks of those of procs that still run."""
        found = {}
        for proc in procs:
            try:
                found[proc.pid] = start_ticks(proc.pid)
            except psutil.Error:
                continue
        return found

    @property
    def orphaned(self) -> bool:
        return not self.running and bool(self.members)

    def leader_age(self) -> float:
        return max(0.0, self.clock.time() - started_at(self.leader))

    def age_of(self, proc: psutil.Process) -> float:
        """proc's age on this view's clock."""
        try:
            return max(0.0, self.clock.time() - (time.time() - age_seconds(proc)))
        except psutil.Error:
            return 0.0

    def started_at(self) -> float:
        return started_at(self.leader)

    def peers(self, procs: Iterable[psutil.Process], kind: str = "tcp") -> dict[int, set[Endpoint]] | None:
        """The broker-side peers of procs' connections (kind: as established_peers); None when
        the kernel does not let us read them."""
        try:
            return established_peers((proc.pid for proc in procs), kind)
        except PeersUnavailable:
            return None
