"""No password leaks: every action of every agent, with distinctive secrets, while a watcher
reads /proc; then every file the agents could have written.

The secrets: os_password (a resource parameter, so in the agent's own environment, as
Pacemaker passes it), the broker's password in transport_url and cinder's own password in
[keystone_authtoken] (cinder.conf), and the tokens Keystone issues.  None may appear in the
command line of any process, in the environment of a process the agent started, in the
agent's output or log files, or in any file except 0600 files owned by the agent's user
(root): the token cache.
"""

import os
import stat
import threading
import urllib.parse
from pathlib import Path
from typing import Iterator, List, Set

import pytest

from lab.resource import AgentRun
from tests.unit.resources import AGENT_NAMES, CONF_PASSWORD, PASSWORD, RABBIT_PASSWORD, Resource

SECRETS = [PASSWORD, urllib.parse.quote(PASSWORD, safe=""), RABBIT_PASSWORD, CONF_PASSWORD]
TOKEN_PREFIX = "fake-token-"  # what FakeKeystone issues


class ProcWatcher:
    """Reads the cmdline and environ of every process of this test while an agent runs: those
    that name its directory (the agent, through HA_RSCTMP; the daemon, through its binary).
    Other runs of these tests on the machine use the same secrets, on their own processes."""

    def __init__(self, workdir: Path) -> None:
        self.mark = str(workdir).encode()
        # Every process of this test starts after the watcher: the machine's older ones (their
        # start in clock ticks since boot, a second of slack) are not read every 5 ms.
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        self.since = (uptime - 1.0) * os.sysconf("SC_CLK_TCK")
        self.leaks: Set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "ProcWatcher":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.scan(me)
            self._stop.wait(0.005)

    def scan(self, me: int) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                stat = _read(f"/proc/{name}/stat").rsplit(b")", 1)[1].split()
                if int(stat[19]) < self.since:
                    continue
                ppid = int(stat[1])
                cmdline = _read(f"/proc/{name}/cmdline")
                environ = _read(f"/proc/{name}/environ")
            except (OSError, ValueError, IndexError):
                continue
            if self.mark not in cmdline and self.mark not in environ:
                continue
            for secret in SECRETS:
                if secret.encode() in cmdline:
                    self.leaks.add(f"cmdline of {name}: {cmdline[:200]!r}")
                # The agent itself (the test's child) has os_password from Pacemaker; a process
                # it starts must not.  Between fork and exec a child is still a copy of the
                # agent (same command line): not yet a process of its own.
                if secret.encode() in environ and ppid != me and not _unexeced_fork(cmdline, ppid):
                    self.leaks.add(f"environ of {name} ({cmdline[:100]!r})")


def _read(path: str) -> bytes:
    """The whole of a /proc file (os-level reads: the watcher reads hundreds every 5 ms)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _unexeced_fork(cmdline: bytes, ppid: int) -> bool:
    try:
        return Path(f"/proc/{ppid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


@pytest.fixture(params=AGENT_NAMES)
def resource(agents_dir: Path, request: pytest.FixtureRequest) -> Iterator[Resource]:
    # The executable itself: the watcher reads the agent's own command line and environment
    # in /proc, which a forked copy of the test (lab/forked.py) would not show.
    res = Resource(agents_dir, request.param, runner="exec")
    yield res
    res.close()


def files_under(root: Path) -> List[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_no_secret_leaks_from_any_action(resource: Resource) -> None:
    res = resource
    logs = res.workdir / "logs"
    logs.mkdir()
    env = {"HA_LOGFILE": str(logs / "ha.log"), "HA_DEBUGLOG": str(logs / "ha-debug.log"), "HA_debug": "1"}
    runs: List[AgentRun] = []
    watcher = ProcWatcher(res.workdir)

    def act(action: str, **kwargs: float) -> AgentRun:
        run = res.run(action, extra_env=env, **kwargs)  # type: ignore[arg-type]
        runs.append(run)
        return run

    with watcher:
        act("meta-data")
        assert act("validate-all").rc == 0
        assert act("monitor", interval_s=0).rc == 7
        res.keystone.mode = "reject401"  # the credentials' failure is reported, never shown
        assert act("start").rc == 0
        res.keystone.mode = "error500"
        assert act("monitor").rc == 0
        res.keystone.mode = "ok"
        assert act("monitor").rc == 0
        assert act("monitor").rc == 0  # the cached token
        assert act("status").rc == 0
        # The daemon's tree: its command lines and environments, while it runs.
        watcher.scan(os.getpid())
        for pid in res.members():
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"OCF_RESKEY" not in environ
        if not res.api:
            res.agent.params["url"] = "http://127.0.0.1:1"  # the heartbeat's cinder-api is down
            assert act("monitor").rc == 0
            res.agent.params = dict(res.baseline)
        assert act("stop").rc == 0
        res.agent.params["insecure"] = "maybe"
        assert act("validate-all").rc == 6
        res.agent.params = dict(res.baseline)
        res.configure({"transport_url": f"rabbit://u:{RABBIT_PASSWORD}@127.0.0.1:1/?ssl=maybe"})
        act("validate-all")  # cinder-api ignores transport_url; the others refuse it
        act("usage")
    assert not watcher.leaks, watcher.leaks
    assert res.keystone.token_requests >= 2
    for run in runs:
        for secret in [*SECRETS, TOKEN_PREFIX]:
            assert secret not in run.stdout + run.stderr, (secret, run)
    # Files: the test's own (cinder.conf written by the "operator", the fake Keystone's list)
    # aside, a secret or token may only be in a 0600 file of the agent's user.
    own = {res.config, res.tokens_file}
    holders = []
    for path in files_under(res.workdir):
        if path in own:
            continue
        data = path.read_bytes()
        if any(s.encode() in data for s in [*SECRETS, TOKEN_PREFIX]):
            info = path.stat()
            holders.append(path.name)
            assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0, f"{path} holds a secret"
    assert (logs / "ha.log").stat().st_size > 0 and (logs / "ha-debug.log").stat().st_size > 0
    assert holders == [res.token_cache().name] or not holders, holders
