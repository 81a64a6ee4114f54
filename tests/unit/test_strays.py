"""A copy of the daemon not started by the agent (issue 11, point 1), for every agent.

A process that runs the resource's binary with the resource's configuration is this resource,
whoever started it: a probe or monitor answers 1 for it (never 7: Pacemaker would start a
second one), stop ends it and its children, start ends it before it starts its own.  A process
with another binary or another configuration is never touched.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import psutil
import pytest

from lab.host import process_state, session_members, wait_until
from tests.unit.resources import Resource


@pytest.fixture
def scheduler(agents_dir: Path) -> Iterator[Resource]:
    resource = Resource(agents_dir, "cinder-scheduler")
    try:
        yield resource
    finally:
        resource.close()


class Copies:
    """Processes a test starts by hand, as an operator would (`cinder-volume &`); each is ended
    by its PID at the end if the agent did not end it."""

    def __init__(self) -> None:
        self.started: List[subprocess.Popen] = []

    def start(
        self, argv: List[str], cwd: Optional[str] = None, env: Optional[dict] = None
    ) -> subprocess.Popen:
        # A process group of its own, as a shell with job control gives `cmd &` (the fakes end
        # their group on SIGTERM), but not a session of its own: that is how the agent starts one.
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=os.setpgrp,  # noqa: PLW1509 - the test's threads hold no lock a child needs
        )  # fmt: skip
        self.started.append(proc)
        # Up once its command line is readable (it exec'd its interpreter).
        assert wait_until(lambda: _cmdline(proc.pid)[-1:] == argv[-1:], 5), argv
        return proc

    def ended(self, proc: subprocess.Popen, timeout_s: float = 5.0) -> bool:
        try:
            proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()


def _cmdline(pid: int) -> List[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def copies() -> Iterator[Copies]:
    made = Copies()
    try:
        yield made
    finally:
        made.close()


def probe(res: Resource):  # type: ignore[no-untyped-def]
    return res.run("monitor", interval_s=0)


def test_a_copy_started_by_hand_is_this_resource_failed_and_stop_ends_it(
    res: Resource, copies: Copies
) -> None:
    copy = copies.start([str(res.binary), "--config-file", str(res.config)])
    if res.volume:  # its backend processes
        assert wait_until(lambda: len(psutil.Process(copy.pid).children()) == 2, 5)
    children = [c.pid for c in psutil.Process(copy.pid).children()]
    for run in (probe(res), res.run("monitor"), res.run("status")):
        assert run.rc == 1, run
        assert f"pid {copy.pid} (user root" in run.reason and "outside Pacemaker" in run.reason, run
        assert "by python" in run.reason or "by pytest" in run.reason, run  # who started it
    stop = res.run("stop")
    assert stop.rc == 0, stop
    assert copies.ended(copy), "stop left the copy running"
    assert "ending" in stop.stderr and str(copy.pid) in stop.stderr
    assert all(process_state(pid) is None for pid in children), children
    assert probe(res).rc == 7


@pytest.mark.parametrize("spelling", ["equals", "interpreter", "relative", "symlink", "config-dir"])
def test_every_spelling_of_the_same_command_is_a_copy(
    scheduler: Resource, copies: Copies, spelling: str
) -> None:
    res, binary, config = scheduler, str(scheduler.binary), str(scheduler.config)
    cwd = None
    if spelling == "equals":
        argv = [binary, f"--config-file={config}"]
    elif spelling == "interpreter":
        argv = [sys.executable, "-s", binary, "--config-file", config]
    elif spelling == "relative":
        argv, cwd = [f"./{res.binary.name}", "--config-file", res.config.name], str(res.workdir)
    elif spelling == "symlink":
        # /usr/bin/cinder-scheduler -> /opt/venv/bin/cinder-scheduler, a linked cinder.conf
        (res.workdir / "bin").mkdir()
        os.symlink(res.binary, res.workdir / "bin" / res.binary.name)
        os.symlink(res.config, res.workdir / "linked.conf")
        argv = [str(res.workdir / "bin" / res.binary.name), "--config-file", str(res.workdir / "linked.conf")]
    else:
        confdir = res.workdir / "cinder.conf.d"
        confdir.mkdir()
        res.agent.params["additional_parameters"] = f"--config-dir {confdir}"
        argv = [binary, "--config-file", config, f"--config-dir={confdir}"]
    copy = copies.start(argv, cwd=cwd)
    run = probe(res)
    assert run.rc == 1, run
    assert f"pid {copy.pid}" in run.reason
    assert res.run("stop").rc == 0 and copies.ended(copy)


def test_a_copy_started_without_config_options_reads_the_default_file(
    scheduler: Resource, copies: Copies
) -> None:
    """`cinder-scheduler &` with no option reads ~/.cinder/cinder.conf (oslo.config's first
    default): the resource's configuration when that is its config parameter."""
    home = scheduler.workdir / "home"
    (home / ".cinder").mkdir(parents=True)
    default = home / ".cinder" / "cinder.conf"
    shutil.copy(scheduler.config, default)
    scheduler.agent.params["config"] = str(default)
    copy = copies.start([str(scheduler.binary)], env={**os.environ, "HOME": str(home)})
    run = scheduler.run("monitor", interval_s=0, extra_env={"HOME": str(home)})
    assert run.rc == 1, run
    assert f"pid {copy.pid}" in run.reason
    # For an agent whose home has no such file, the same process is not this resource's.
    assert scheduler.run("monitor", interval_s=0, extra_env={"HOME": str(scheduler.workdir)}).rc == 7


@pytest.mark.parametrize("kind", ["other-config", "other-binary", "no-config-options", "other-config-dir"])
def test_processes_of_another_binary_or_config_are_untouched(
    scheduler: Resource, copies: Copies, kind: str
) -> None:
    res = scheduler
    if kind == "other-config":
        other = res.workdir / "other.conf"
        shutil.copy(res.config, other)  # the same content, another resource's file
        argv = [str(res.binary), "--config-file", str(other)]
    elif kind == "other-binary":
        other_binary = res.workdir / "fake-cinder-other"
        shutil.copy(res.binary, other_binary)
        argv = [str(other_binary), "--config-file", str(res.config)]
    elif kind == "no-config-options":
        # It reads its own ~/.cinder/cinder.conf (the same content), not the resource's file.
        home = res.workdir / "home"
        (home / ".cinder").mkdir(parents=True)
        shutil.copy(res.config, home / ".cinder" / "cinder.conf")
        env = {**os.environ, "HOME": str(home)}
        argv = [str(res.binary)]
    else:
        confdir = res.workdir / "more.conf.d"
        confdir.mkdir()
        argv = [str(res.binary), "--config-file", str(res.config), "--config-dir", str(confdir)]
    other_proc = copies.start(argv, env=env if kind == "no-config-options" else None)
    assert probe(res).rc == 7
    assert res.run("stop").rc == 0
    start = res.run("start")
    assert start.rc == 0, start
    assert res.run("monitor").rc == 0
    assert res.run("stop").rc == 0
    assert other_proc.poll() is None, "an unrelated process was ended"


@pytest.mark.parametrize("name", ["cinder-volume", "cinder-backup"])
def test_a_copy_beside_the_running_daemon_fails_the_monitor(
    agents_dir: Path, copies: Copies, name: str
) -> None:
    res = Resource(agents_dir, name)
    try:
        res.start()
        leader = res.pid()
        copy = copies.start([str(res.binary), "--config-file", str(res.config)])
        run = res.run("monitor")
        assert run.rc == 1, run
        assert (
            f"pid {copy.pid}" in run.reason
            and f"beside the one this resource started (pid {leader})" in run.reason
        )
        assert res.run("stop").rc == 0
        assert copies.ended(copy)
        assert leader is not None and not session_members(leader)
    finally:
        res.close()


def test_start_ends_a_copy_and_starts_its_own(res: Resource, copies: Copies) -> None:
    copy = copies.start([str(res.binary), "--config-file", str(res.config)])
    start = res.run("start")
    assert start.rc == 0, start
    assert copies.ended(copy), "start left the copy running beside its own"
    assert "ending" in start.stderr and str(copy.pid) in start.stderr
    leader = res.pid()
    assert leader is not None and leader != copy.pid and process_state(leader) is not None
    assert res.run("monitor").rc == 0
