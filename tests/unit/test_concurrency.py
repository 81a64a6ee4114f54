"""Operations of one resource at once: two monitors and a probe never corrupt the pid file or
the token cache, and a monitor racing a start answers consistently.

Pacemaker serialises the operations of a resource on a node, but an operator's `crm_resource
--force-check`, `cinder-ocf check` or a probe after a cluster restart may run beside them.
Every state file is written to a temporary name and renamed, so readers see the old or the new
whole file, never a part; concurrent writers each write a whole file, the last one wins.
"""

import json
import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import psutil
import pytest

from cinder_ocf.openstack.keystone import TokenCache
from lab.host import process_state, session_members, wait_until
from lab.resource import AgentRun
from tests.unit.resources import Resource


@pytest.fixture(params=["cinder-api", "cinder-volume"])
def resource(agents_dir: Path, request: pytest.FixtureRequest) -> Iterator[Resource]:
    res = Resource(agents_dir, request.param)
    yield res
    res.close()


def at_once(res: Resource, ops: List[Tuple[str, float]]) -> List[AgentRun]:
    """Run the operations (action, interval) together, released by one barrier."""
    barrier = threading.Barrier(len(ops))
    results: List[AgentRun] = [None] * len(ops)  # type: ignore[list-item]

    def one(index: int, action: str, interval: float) -> None:
        barrier.wait()
        results[index] = res.run(action, interval_s=interval)

    threads = [threading.Thread(target=one, args=(i, a, iv)) for i, (a, iv) in enumerate(ops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_monitors_and_a_probe_never_corrupt_state(resource: Resource) -> None:
    res = resource
    res.start()
    pid_file = res.pid_file().read_bytes()
    leader = res.pid()
    for round_ in range(8):
        # Each round, every operation finds no cached token and no cached facts, and writes both.
        for cache in res.rsctmp.glob("cinder-ocf-*"):
            if cache.suffix in (".token", ".conf"):
                cache.unlink()
        runs = at_once(res, [("monitor", 10), ("monitor", 10), ("monitor", 0)])
        for run in runs:
            assert run.rc == 0, (round_, run)
            assert "WARNING" not in run.stderr and "internal error" not in run.stderr, run
        assert res.pid_file().read_bytes() == pid_file, "a monitor never rewrites the pid file"
        record = json.loads(res.token_cache().read_text())
        token = TokenCache(str(res.token_cache()), record["inputs"]).load()  # 0600, ours, whole: else None
        assert token is not None and token.value.startswith("fake-token-") and token.expires_at > time.time()
        assert token.value in res.tokens_file.read_text().split(), "a token Keystone issued"
        assert not list(res.rsctmp.glob("*.tmp")), "no half-written file left behind"
    assert res.run("monitor").rc == 0
    assert res.pid() == leader


def test_a_monitor_racing_a_start_answers_consistently(resource: Resource) -> None:
    """While start runs, a monitor says "not running" (7) until start recorded the daemon, then
    "failed" (1) while it does not answer yet, then 0; never 0 and then something else, never
    a second daemon, and the daemon start reports is the one recorded."""
    res = resource
    if res.api:
        res.configure(start_delay="1.5")  # listens 1.5 s after it started
    else:
        res.configure(connect="no")  # never connects: "starting" for start_grace, then failed
        res.agent.params["start_grace"] = "2"
    done = threading.Event()
    answers: List[AgentRun] = []
    start_run: List[AgentRun] = []

    def start() -> None:
        start_run.append(res.run("start", timeout_s=20))
        done.set()

    def monitor() -> None:
        while not done.is_set():
            answers.append(res.run("monitor"))
            time.sleep(0.05)

    threads = [threading.Thread(target=start), threading.Thread(target=monitor)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = start_run[0]
    assert len(answers) >= 3, answers
    codes = [run.rc for run in answers]
    if res.api:
        assert started.rc == 0, started
    else:
        assert started.rc == 1 and "no AMQP connection" in started.reason, started
    for run in answers:
        assert run.rc in (0, 1, 7), run
        assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run
        if run.rc == 7:
            assert "no pid file" in run.reason, run
        if run.rc == 1:
            assert "refused" in run.reason or "no AMQP connection" in run.reason, run
    # Monotonic: not recorded -> recorded; once healthy, healthy.
    first_recorded = next((i for i, c in enumerate(codes) if c != 7), len(codes))
    assert all(c == 7 for c in codes[:first_recorded]) and 7 not in codes[first_recorded:], codes
    if 0 in codes and res.api:
        assert all(c == 0 for c in codes[codes.index(0) :]), codes
    leader = res.pid()
    assert leader is not None and process_state(leader) is not None
    if res.api:
        assert f"started (pid {leader})" in started.stderr
        assert session_members(leader) == [leader], "one daemon, the one recorded"
        assert res.run("monitor").rc == 0


def daemons_of(res: Resource) -> List[int]:
    """Every process running this resource's fake daemon, whoever started it."""
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if str(res.binary) in (proc.info["cmdline"] or [])[:2] and proc.status() != psutil.STATUS_ZOMBIE
    ]


@pytest.mark.parametrize("actions", [["start", "start"], ["start", "start", "stop"]])
def test_starts_and_stops_of_one_resource_take_turns(resource: Resource, actions: List[str]) -> None:
    """Two starts at once (an operator's debug-start beside Pacemaker) each found no pid file and
    both spawned; serialized, the second finds the first's daemon.  Whatever the order the lock
    gives them, the end is one daemon tree when the last action was a start, none after stop."""
    res = resource
    try:
        runs = at_once(res, [(action, 0) for action in actions])
        for run in runs:
            assert run.rc == 0, run
        leader = res.pid() if res.pid_file().exists() else None
        running = daemons_of(res)
        if leader is None:
            assert running == [], "no pid file and yet a daemon runs"
        else:
            leaders = [pid for pid in running if psutil.Process(pid).ppid() not in running]
            assert leaders == [leader], f"one daemon tree, the one recorded: {running}"
        assert res.run("stop").rc == 0
        assert wait_until(lambda: not daemons_of(res), 5), daemons_of(res)
    finally:
        for pid in daemons_of(res):  # the test's own fake daemons, left by a failure above
            psutil.Process(pid).kill()
