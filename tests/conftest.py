"""Fixtures every test layer shares: the agents installed as Pacemaker would run them."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from cinder_ocf.cli import install_agents

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """A lane whose interpreter `nobody` cannot run (tools/py39-lane says so) skips, visibly, the
    tests that run it as nobody: they would fail on permissions, not on the agents."""
    if os.environ.get("CINDER_OCF_LANE_NOBODY") != "no":
        return
    lane = os.environ.get("CINDER_OCF_LANE", "this lane")
    skip = pytest.mark.skip(reason=f"{lane}: nobody cannot run the test interpreter {sys.executable}")
    for item in items:
        if item.get_closest_marker("nobody"):
            item.add_marker(skip)


def open_dir(prefix: str) -> Path:
    """A temp dir under /var/tmp that `nobody` and daemon users can traverse (mkdtemp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def agents_dir() -> Iterator[Path]:
    """The agents as `cinder-ocf install-agents` writes them, bound to the test interpreter."""
    directory = open_dir("cinder-ocf-agents-")
    install_agents(str(directory), sys.executable)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=True)


class AgentRun:
    def __init__(self, proc: "subprocess.CompletedProcess[str]", seconds: float) -> None:
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
    """One resource: an agent executable, its parameters and its HA_RSCTMP."""

    def __init__(self, path: Path, rsctmp: Path, instance: str, params: Dict[str, str]) -> None:
        self.path = path
        self.rsctmp = rsctmp
        self.instance = instance
        self.params = dict(params)

    def environment(self, action: str, timeout_s: float, interval_s: float) -> Dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
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

    def __call__(
        self,
        action: str,
        timeout_s: float = 20.0,
        interval_s: float = 10.0,
        extra_env: Optional[Dict[str, str]] = None,
        argv: Optional[List[str]] = None,
    ) -> AgentRun:
        env = self.environment(action, timeout_s, interval_s)
        env.update(extra_env or {})
        started = time.monotonic()
        proc = subprocess.run(
            argv or [str(self.path), action],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s + 10,
            check=False,
        )
        return AgentRun(proc, time.monotonic() - started)

    def pid_file(self) -> Path:
        return Path(self.params.get("pid") or self.rsctmp / f"{self.instance}.pid")


def process_state(pid: int) -> Optional[str]:
    """'R', 'S', ... for a live process, None when gone or a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = data.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def wait_until(predicate, timeout_s: float, step_s: float = 0.05) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def session_members(leader: int) -> List[int]:
    """Live processes of the session a daemon leads (a daemon's whole tree, orphans included)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True, check=True)
    rows = (line.split() for line in out.stdout.splitlines())
    return [int(p) for p, s, st in rows if int(s) == leader and not st.startswith("Z")]
