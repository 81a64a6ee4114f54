"""A process stays the same process when the kernel's boot time moves by a second.

psutil's create_time is the kernel's start ticks plus its boot time in whole seconds (btime in
/proc/stat), which a slewing clock moves by one now and then; a Process keeps the create_time
it read first.  A fresh clone's make test saw it once: stop took the live daemon for someone
else's and answered 0 with it still running.  Here the boot time moves through psutil's own
PROCFS_PATH: a directory whose `stat` says another btime and whose pids lead to /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from cinder_ocf.supervisor import processes
from cinder_ocf.supervisor.processes import ProcessView
from lab.stack.openstack import Process as LabProcess

MoveBootTime = Callable[[int, list[int]], None]


@pytest.fixture
def move_boot_time(tmp_path: Path) -> Iterator[MoveBootTime]:
    """move(seconds, pids): from now on psutil sees only pids, booted `seconds` later."""
    procfs = tmp_path / "proc"
    procfs.mkdir()
    real = Path("/proc/stat").read_text(encoding="ascii").splitlines()

    def move(seconds: int, pids: list[int]) -> None:
        for pid in pids:
            (procfs / str(pid)).symlink_to(f"/proc/{pid}")
        moved = [
            f"btime {int(line.split()[1]) + seconds}" if line.startswith("btime ") else line for line in real
        ]
        (procfs / "stat").write_text("\n".join(moved) + "\n", encoding="ascii")
        psutil.PROCFS_PATH = str(procfs)

    try:
        yield move
    finally:
        psutil.PROCFS_PATH = "/proc"
        psutil.boot_time()  # psutil 5.8 keeps the last boot time read for create_time


@pytest.fixture
def session() -> Iterator[tuple[int, int]]:
    """A daemon in a session of its own and the child it forked: (leader pid, child pid)."""
    leader = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & wait"], start_new_session=True)
    child = 0
    try:
        deadline = time.monotonic() + 10
        while not child and time.monotonic() < deadline:
            forked = psutil.Process(leader.pid).children()
            if forked and forked[0].exe() != psutil.Process(leader.pid).exe():  # sleep exec'd
                child = forked[0].pid
            time.sleep(0.01)
        assert child, "the test daemon did not fork its child"
        yield leader.pid, child
    finally:
        # The child first: the shell reaps it, and no orphan is left for PID 1 to reap later.
        if child and psutil.pid_exists(child) and os.getsid(child) == leader.pid:
            os.kill(child, signal.SIGKILL)
        try:
            leader.wait(timeout=10)
        except subprocess.TimeoutExpired:
            leader.kill()
            leader.wait()


@pytest.mark.parametrize("seconds", [1, -1])
def test_the_daemon_stays_ours_when_the_boot_time_moves(
    seconds: int, move_boot_time: MoveBootTime, session: tuple[int, int]
) -> None:
    leader, child = session
    recorded = processes.identity_of(leader)
    assert recorded is not None
    child_ticks = processes.start_ticks(child)
    held = psutil.Process(leader)
    held.create_time()  # read, and kept, at the old boot time
    assert {proc.pid for proc in processes.tree(recorded)} == {leader, child}  # psutil keeps these

    move_boot_time(seconds, [leader, child])
    assert psutil.Process(leader).create_time() == pytest.approx(held.create_time() + seconds)

    assert processes.identity_of(leader) == recorded
    assert processes.is_running(recorded)
    assert processes.matches(held, recorded)
    assert {proc.pid for proc in processes.tree(recorded)} == {leader, child}
    assert ProcessView.still_runs(child, child_ticks)
    assert ProcessView.start_ticks_of([held, psutil.Process(child)]) == {
        leader: recorded.start_ticks,
        child: child_ticks,
    }
    # SIGCONT: signalled, and left running for the fixture to stop in order.
    assert sorted(processes.signal_tree([leader, child], recorded, signal.SIGCONT)) == sorted([leader, child])


def test_another_process_stays_another_when_the_boot_time_moves(
    move_boot_time: MoveBootTime, session: tuple[int, int]
) -> None:
    """The second of slack is for the boot time only: a start a tick off is still not ours."""
    leader, child = session
    recorded = processes.identity_of(leader)
    assert recorded is not None
    move_boot_time(1, [leader, child])
    assert not processes.is_running(recorded._replace(start_ticks=recorded.start_ticks + 1))
    assert not ProcessView.still_runs(child, processes.start_ticks(child) - 1)
    # A session younger than the leader recorded is another daemon's (its pid reused).
    assert processes.tree(recorded._replace(start_ticks=recorded.start_ticks + 200)) == []


def test_the_labs_processes_stay_alive_when_the_boot_time_moves(
    move_boot_time: MoveBootTime, session: tuple[int, int]
) -> None:
    """The lab signals its services only while they are alive: a moved boot time must not make
    a running service look gone, or a test would leave it running."""
    leader, child = session
    service = LabProcess.attach("sleep", leader)
    move_boot_time(1, [leader, child])
    assert service.alive()
