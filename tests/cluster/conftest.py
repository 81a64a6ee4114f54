"""Fixtures for tests that need a real Pacemaker + Corosync cluster (see lab/cluster/harness.py).

``cluster1`` / ``cluster2`` give a running 1- or 2-node cluster.  All clusters use the same
namespace names and addresses, so there is at most one at a time: a pool per test module
keeps the current cluster for the next test that asks for the same size (resources made
by earlier tests are still there), and replaces it when a test wants the other size or
the cluster is unhealthy (e.g. a test crashed a node and failed before booting it again).
At the end of each module the cluster goes down, so that nothing of it outlives the
module (tests elsewhere, e.g. tests/integration, may build their own cluster).

Environment:
  COCF_CLUSTER_KEEP=1        keep the nodes' state and logs for post-mortem (path is logged)
  COCF_CLUSTER_STATE_DIR=D   where the state goes (default: $TMPDIR or /tmp)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest

from lab.cluster.harness import (
    NODE_ENV,
    NS_PREFIX,
    Cluster,
    HarnessError,
    cleanup_stale,
    netns_list,
    run,
)
from lab.cluster.scenario import MONITOR_INTERVAL_S, Deployment, stack_venv_for_nodes
from lab.cluster.workload import ClientView, Managed
from lab.stack.install import ensure_debian_packages

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

DEBIAN_PACKAGES = (
    "pacemaker",
    "pacemaker-cli-utils",
    "corosync",
    "pcs",
    "crmsh",
    "resource-agents",
    "iproute2",
    "iputils-ping",
    "util-linux",
    "procps",
)
BINARIES = (
    "corosync",
    "pacemakerd",
    "crm_mon",
    "cibadmin",
    "crm_resource",
    "pcs",
    "crm",
    "ip",
    "nsenter",
    "unshare",
    "ping",
    "ps",
)


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Mark every test under tests/cluster with ``cluster``."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.cluster)


_BEGAN = pytest.StashKey[float]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_BEGAN] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed scenario's report carries what the logs said meanwhile: CI keeps the output of a
    failed run, and nothing of its machine."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    deployment = getattr(item, "funcargs", {}).get("deployment")
    if report.failed and report.when == "call" and isinstance(deployment, Deployment):
        try:
            text = deployment.post_mortem(item.stash.get(_BEGAN, 0.0))
        except Exception as err:  # the failure itself matters more than its post-mortem
            text = f"post-mortem failed: {err!r}"
        report.sections.append(("post-mortem: logs since the scenario began", text))


def _skip_reason() -> Optional[str]:
    if os.geteuid() != 0:
        return "cluster tests need root (network, mount and PID namespaces)"
    ensure_debian_packages(*DEBIAN_PACKAGES)
    missing = [b for b in BINARIES if shutil.which(b, path=NODE_ENV["PATH"]) is None]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install {' '.join(DEBIAN_PACKAGES)}"
    probe = run(
        ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc", "true"],
        check=False,
        timeout=30,
        env=NODE_ENV,
    )
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip()}"
    return None


class ClusterPool:
    """Hands out the one cluster that can exist at a time."""

    def __init__(self, keep: bool, state_dir: Optional[str]) -> None:
        self.keep = keep
        self.state_dir = state_dir
        self.current: Optional[Cluster] = None

    def get(self, size: int) -> Cluster:
        cluster = self.current
        if cluster is not None and len(cluster.nodes) == size and _healthy(cluster):
            return cluster
        self.close()
        root = tempfile.mkdtemp(prefix=f"cocf-cluster{size}-", dir=self.state_dir)
        try:
            self.current = Cluster(root, nodes=size, keep_state=self.keep).up()
        except BaseException:
            if not self.keep:  # up() has torn down what it started
                shutil.rmtree(root, ignore_errors=True)
            raise
        return self.current

    def close(self) -> Optional[Cluster]:
        """Tear the current cluster down (if any) and return it, for inspection."""
        cluster, self.current = self.current, None
        if cluster is None:
            return None
        try:
            cluster.down()
        finally:
            if self.keep:
                log.warning("cluster state kept in %s", cluster.root)
            else:
                shutil.rmtree(cluster.root, ignore_errors=True)
        return cluster


def _healthy(cluster: Cluster) -> bool:
    if cluster.running_nodes != cluster.nodes:
        return False
    try:
        cluster.wait_ready(timeout=30)
    except HarnessError:
        return False
    return True


def _ours(names: List[str]) -> Set[str]:
    return {name for name in names if name.startswith(NS_PREFIX)}


def _check_nothing_left(namespaces_before: Set[str]) -> None:
    namespaces = _ours(netns_list()) - namespaces_before
    # (namespaces that existed before us have their /run/netns/... mount: not ours)
    theirs = tuple(f"/run/netns/{ns} " for ns in namespaces_before)
    mounts = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "cocf" in line and not any(mark in line for mark in theirs)
    ]
    assert not namespaces, f"namespaces left behind: {sorted(namespaces)}"
    assert not mounts, "mounts left behind:\n" + "\n".join(mounts)


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (a CI timeout, say) would otherwise kill pytest without any teardown
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster_host() -> Iterator[None]:
    """Skips unless this machine can run clusters; installs the packages if it can."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    busy = cleanup_stale()
    if busy:
        log.warning("node namespaces in use by someone else: %s", busy)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def cluster_pool(cluster_host: None) -> Iterator[ClusterPool]:
    before = _ours(netns_list())
    pool = ClusterPool(
        keep=os.environ.get("COCF_CLUSTER_KEEP", "") not in ("", "0"),
        state_dir=os.environ.get("COCF_CLUSTER_STATE_DIR") or None,
    )
    try:
        yield pool
    finally:
        try:
            pool.close()  # raises if a process or namespace was left behind
        finally:
            _check_nothing_left(before)


@pytest.fixture
def cluster1(cluster_pool: ClusterPool) -> Cluster:
    """A running 1-node cluster (node1)."""
    return cluster_pool.get(1)


@pytest.fixture
def cluster2(cluster_pool: ClusterPool) -> Cluster:
    """A running 2-node cluster (node1, node2)."""
    return cluster_pool.get(2)


@contextlib.contextmanager
def deployed(label: str, **options: Any) -> Iterator[Deployment]:
    """A lab.cluster.scenario.Deployment up for a test module, narrated as [label], taken down
    after; no namespace or mount of it may remain."""

    def say(line: str) -> None:
        print(f"\n[{label}] {line}")

    before = _ours(netns_list())
    dep = Deployment(
        stack_venv_for_nodes(say),
        say=say,
        keep=os.environ.get("COCF_CLUSTER_KEEP", "") not in ("", "0"),
        state_dir=os.environ.get("COCF_CLUSTER_STATE_DIR") or None,
        **options,
    )
    dep.up()
    try:
        yield dep
    finally:
        try:
            dep.down()
        finally:
            _check_nothing_left(before)


@contextlib.contextmanager
def with_the_user(
    dep: Deployment, results: Path, views: Dict[str, ClientView], module: str, **extra: object
) -> Iterator[Deployment]:
    """The cloud user's client for a module's whole deployment; at its end, the module's
    timings and what the user saw in each scenario (views, filled by watched_by_the_user)
    written to results."""
    try:
        dep.start_client()
        yield dep
    finally:
        client = {name: view.as_json() for name, view in views.items()}
        scenario = f"tests/cluster/{Path(module).name}"
        dep.timings.write_json(results, scenario=scenario, client=client, **extra)
        dep.say(f"times written to {results}:\n{dep.timings.table()}")


@contextlib.contextmanager
def watched_by_the_user(
    name: str, deployment: Deployment, views: Dict[str, ClientView], managed: Dict[str, Managed]
) -> Iterator[None]:
    """One scenario's window of the cloud user's requests, printed and kept in views; and a
    volume of the user's made before it, extended and deleted after it, kept in managed
    (issue 13, pt 2)."""
    if deployment.cluster is not None:
        # from a quiet cluster: what the last scenario set going is not this one's recovery
        deployment.cluster.settle()
    held = deployment.hold_volume() if deployment.cluster is not None else None
    start, wall = time.monotonic(), time.time()
    yield
    client = deployment.client or deployment.finished_client
    if client is not None:
        end = time.monotonic()
        view = views[name] = client.view(start, end)
        view.began_at = wall
        if deployment.cluster is not None and deployment.cluster.running_nodes:
            stopped = any(start <= t <= end for t in deployment.broker_stops)
            replaced = any(start <= t <= end for t in deployment.backend_kills)
            view.note_cluster(deployment.starts_since(wall), MONITOR_INTERVAL_S, stopped, replaced)
        print(f"\n[client] {name}: {view.line()}")
    if held is not None and deployment.cluster is not None:
        managed[name] = deployment.manage_held(held)
