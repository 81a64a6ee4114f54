"""One resource: an agent executable run the way Pacemaker runs it, and what it leaves running."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from .host import session_members, wait_until

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Clock

    from .stack.openstack import OpenStack

OCF_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
RUNNERS = ("exec", "fork", "inprocess")


class AgentRun:
    """What one action answered: its exit code, its output, how long it took."""

    def __init__(self, proc: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    @property
    def reason(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("ocf-exit-reason:")]
        return lines[-1][len("ocf-exit-reason:") :] if lines else ""

    def __repr__(self) -> str:
        return f"AgentRun(rc={self.rc}, {self.seconds:.2f} s, stderr={self.stderr[-1500:]!r})"


class Agent:
    """One resource: an agent executable, its parameters and its HA_RSCTMP.

    runner "exec" runs the executable as Pacemaker does; "fork" runs the same action in a
    forked copy of this process (lab/forked.py: a real process with its own exit status,
    output and daemons, without an interpreter start-up), for tests of what the agent decides
    rather than of its executable; "inprocess" runs it in this process (lab/inprocess.py), for
    the decisions of actions that start no daemon.  A call can ask for any of them.
    """

    def __init__(
        self, path: Path, rsctmp: Path, instance: str, params: Dict[str, str], runner: str = "exec"
    ) -> None:
        if runner not in RUNNERS:
            raise ValueError(f"runner {runner!r} is not one of {RUNNERS}")
        self.path = path
        self.rsctmp = rsctmp
        self.instance = instance
        self.params = dict(params)
        self.runner = runner

    def environment(self, action: str, timeout_s: float, interval_s: float) -> Dict[str, str]:
        """What Pacemaker gives the agent for action (a recurring monitor every interval_s)."""
        env = {
            "PATH": OCF_PATH,
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": self.instance,
            "OCF_RESOURCE_TYPE": self.path.name,
            "OCF_RESOURCE_PROVIDER": "openstack",
            "HA_RSCTMP": str(self.rsctmp),
            "OCF_RESKEY_CRM_meta_timeout": str(int(timeout_s * 1000)),
        }
        if action == "monitor":
            env["OCF_RESKEY_CRM_meta_interval"] = str(int(interval_s * 1000))
        env.update({f"OCF_RESKEY_{k}": v for k, v in self.params.items()})
        return env

    def argv(self, action: str) -> List[str]:
        return [str(self.path), action]

    def __call__(
        self,
        action: str,
        timeout_s: float = 20.0,
        interval_s: float = 10.0,
        extra_env: Optional[Dict[str, str]] = None,
        argv: Optional[List[str]] = None,
        runner: Optional[str] = None,
        cwd: Optional[str] = None,
        kill_after_s: Optional[float] = None,
        clock: Optional[Clock] = None,
    ) -> AgentRun:
        """action as Pacemaker runs it with an op timeout of timeout_s; killed, and
        subprocess.TimeoutExpired raised, after kill_after_s (10 s past the op timeout).
        clock (not for runner "exec"): what the agent measures time with, for a test that moves it."""
        env = self.environment(action, timeout_s, interval_s)
        env.update(extra_env or {})
        argv = argv or self.argv(action)
        runner = runner or self.runner
        kill_after_s = timeout_s + 10 if kill_after_s is None else kill_after_s
        started = time.monotonic()
        if runner == "fork":
            from . import forked  # noqa: PLC0415 - imports cinder_ocf, which only the unit tests have here

            proc = forked.run(self.path, argv, env, kill_after_s, cwd=cwd, clock=clock)
        elif runner == "inprocess":
            from . import inprocess  # noqa: PLC0415 - likewise

            proc = inprocess.run(self.path, argv, env, cwd=cwd, clock=clock)
        elif clock is not None:
            raise ValueError(
                "an executable runs on the real clock: a clock needs runner 'fork' or 'inprocess'"
            )
        elif runner == "exec":
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=kill_after_s, check=False, cwd=cwd
            )
        else:
            raise ValueError(f"runner {runner!r} is not one of {RUNNERS}")
        return AgentRun(proc, time.monotonic() - started)

    def pid_file(self) -> Path:
        return Path(self.params.get("pid") or self.rsctmp / f"{self.instance}.pid")

    def pid(self) -> int:
        """The daemon's pid, from the pid file the agent wrote (OSError, ValueError if none)."""
        return int(self.pid_file().read_text().split()[0])

    def leader(self) -> Optional[int]:
        """The daemon's pid, None when the pid file is missing, unreadable or not a file."""
        if not self.pid_file().is_file():  # a FIFO would block the read
            return None
        try:
            return self.pid()
        except (OSError, ValueError, IndexError):
            return None

    def state_file(self, suffix: str) -> Path:
        """A file the agent keeps in HA_RSCTMP (suffix "token": its token cache)."""
        safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in self.instance)
        return self.rsctmp / f"cinder-ocf-{safe}.{suffix}"


@dataclass
class Stopped:
    """A resource stopped as Pacemaker stops it, and what of its daemon outlived the stop."""

    run: AgentRun
    leader: Optional[int]  # the daemon's pid before the stop, if it had one
    left: List[int]  # processes of the daemon's session still alive after the grace time


def stop_resource(agent: Agent, timeout_s: float = 15.0, grace_s: float = 5.0) -> Stopped:
    """stop, then up to grace_s for every process of the daemon's session to end."""
    leader = agent.leader()
    run = agent("stop", timeout_s=timeout_s)
    left: List[int] = []
    if leader is not None and not wait_until(lambda: not session_members(leader), grace_s):
        left = session_members(leader)
    return Stopped(run, leader, left)


def stack_resource(
    stack: OpenStack, agents_dir: Path, name: str, rsctmp: Path, instance: str = "", **params: str
) -> Agent:
    """Agent name (cinder-schedule too) for the daemon of the stack's venv and its cinder.conf;
    the instance is p_<name> unless given."""
    binary = "cinder-scheduler" if name == "cinder-schedule" else name
    return Agent(
        agents_dir / name,
        rsctmp,
        instance or f"p_{name}",
        {"binary": str(stack.cinder_bin(binary)), "config": str(stack.cinder_conf), **params},
    )
