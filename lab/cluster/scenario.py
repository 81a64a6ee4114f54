"""The agents in a real Pacemaker cluster with real Keystone and RabbitMQ, and the failures
they must handle: the setup and the measured scenarios that tests/cluster/test_api_cluster.py
(which asserts) and lab/demo.py (which narrates) share.

Exports: ServiceResource, SERVICES, Deployment, Poller, Timings and the scenario results.

Layout (names and addresses from harness.py)::

    cocf-svc     10.213.0.100  RabbitMQ and Keystone (lab/stack/openstack.py); cinder.conf
                               and PostgreSQL's data and socket live under /var/tmp/cinder-ocf/cluster-*,
                               which every node sees
    node1/node2  10.213.0.1/2  Pacemaker + Corosync; the agents, installed into
                               /usr/lib/ocf/resource.d/openstack, run cinder-api there
                               (listening on 0.0.0.0 in the node's own network namespace)
    cocf-client  10.213.0.200  the cloud's users, calling the VIP 10.213.0.50

A service added later (cinder-scheduler, cinder-volume, cinder-backup) is one more
ServiceResource in SERVICES once its agent exists: creation, start-up waits, fail counts
and operation histories all go through that list.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import psutil

from cinder_ocf.clusterconfig import (
    ACTIVE_ACTIVE,
    ACTIVE_PASSIVE,
    INDEPENDENT,
    VIP_ID,
    ClusterPlan,
    crm_configuration,
    pcs_commands,
)
from cinder_ocf.ocf import OcfExit
from lab.host import pid_alive
from lab.stack.install import (
    DEFAULT_VENV,
    STACK_PACKAGES,
    ensure_debian_packages,
    ensure_service_user,
    ensure_stack_venv,
    stack_venv_path,
)
from lab.stack.openstack import CINDER_API_PORT, FAKE_HA_DRIVER, OpenStack

from . import postmortem, workload
from .harness import (
    CLIENT_NS,
    NODE_ENV,
    NS_PREFIX,
    SVC_IP,
    SVC_NS,
    VIP,
    Cluster,
    HarnessError,
    Network,
    cleanup_stale,
    netns_executor,
    netns_list,
    node_ip,
    wait_for,
)
from .recorder import Recorder
from .workload import Held, Managed, Request, Workload

log = logging.getLogger(__name__)

RUN_BASE = Path("/var/tmp/cinder-ocf")  # every node sees the host's /var/tmp
PROVIDER_DIR = Path("/usr/lib/ocf/resource.d/openstack")
HA_RSCTMP = "/run/resource-agents"  # on each node's own /run tmpfs
CLIENT_SCRIPT = Path(__file__).resolve().with_name("client.py")
VIP_RESOURCE = VIP_ID
# What each node has of its own (harness.py mounts them per node): nothing the nodes run may
# live there, e.g. a stack venv in /tmp is invisible to them.
NODE_PRIVATE = ("/tmp", "/run", "/dev/shm", "/etc/corosync", "/var/lib/corosync", "/var/lib/pacemaker",
                "/var/log/corosync", "/var/log/pacemaker")  # fmt: skip
API_OK = ("200", "300")  # GET / of cinder-api answers 300 Multiple Choices (the versions)

Say = Callable[[str], None]


# ----------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class ServiceResource:
    """One cinder service as a Pacemaker resource, created the way the OpenStack HA guide does
    (cinder_ocf.clusterconfig writes the pcs commands, as `cinder-ocf cluster-config` does)."""

    agent: str  # OCF type under ocf:openstack, and the primitive's id: "cinder-api"
    clone: bool = True  # active/active on every node (API, scheduler) or one instance (volume)
    params: Tuple[str, ...] = ()  # more name=value parameters (never a password: pcs shows them)
    binary: str = ""  # the daemon in the stack venv's bin/, when not named like the agent

    @property
    def id(self) -> str:
        """What crm_mon, constraints and waits name: the clone, or the primitive."""
        return f"{self.agent}-clone" if self.clone else self.agent

    def resource_params(self, stack: OpenStack) -> Dict[str, str]:
        binary = stack.cinder_bin(self.binary or self.agent)
        return {"binary": str(binary), **dict(p.split("=", 1) for p in self.params)}


MONITOR_INTERVAL_S = 5
MONITOR_TIMEOUT_S = 30
API = ServiceResource("cinder-api")
# start_grace 15 s instead of 60: the services start in ~3 s here, and a broker outage
# shows as a warning (not as "not connected yet") once their processes are that old.
SCHEDULER = ServiceResource("cinder-scheduler", params=("start_grace=15",))
VOLUME = ServiceResource("cinder-volume", clone=False, params=("start_grace=15",))
# Everything the deployment runs, in start order; the VIP follows API.
SERVICES: Tuple[ServiceResource, ...] = (API, SCHEDULER, VOLUME)
# Active/active: cinder-volume cloned, every node serving the backends of one cinder cluster.
VOLUME_CLONE = ServiceResource("cinder-volume", params=("start_grace=15",))
AA_SERVICES: Tuple[ServiceResource, ...] = (API, SCHEDULER, VOLUME_CLONE)
AA_CLUSTER = "cinder-aa"  # cinder.conf [DEFAULT] cluster


# ----------------------------------------------------------------------------- timings


@dataclass
class Timing:
    seconds: float
    what: str


class Timings:
    """Measured durations, by key, with a sentence saying what was measured."""

    def __init__(self) -> None:
        self.entries: Dict[str, Timing] = {}

    def record(self, key: str, seconds: float, what: str) -> float:
        self.entries[key] = Timing(round(seconds, 3), what)
        return seconds

    def table(self) -> str:
        width = max((len(t.what) for t in self.entries.values()), default=10)
        lines = [f"  {'what':<{width}}  seconds", f"  {'-' * width}  -------"]
        lines += [f"  {t.what:<{width}}  {t.seconds:7.2f}" for t in self.entries.values()]
        return "\n".join(lines)

    def write_json(self, path: Path, **extra: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), **_versions()},
            **extra,
            "results": {k: {"seconds": t.seconds, "what": t.what} for k, t in self.entries.items()},
        }
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


def _versions() -> Dict[str, str]:
    versions = {}
    for package in ("pacemaker", "corosync", "pcs", "resource-agents"):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        versions[package] = out.stdout.strip()
    return versions


# ----------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class Sample:
    sent: float  # time.monotonic() of this machine
    done: float
    result: str  # HTTP status, or error:<why>

    @property
    def ok(self) -> bool:
        return self.result in API_OK


@dataclass(frozen=True)
class Gap:
    """What a polling client saw in a window of time."""

    seconds: float  # the longest time in which no request got an answer: the unreachable window
    slowest: float  # the longest any one request waited (a SYN lost to a moving VIP costs 1 s)
    failed: int  # requests that got no answer, or an error status
    answered: int


def _sample(line: str) -> Optional[Sample]:
    """One line of client.py: <sent> <done> <result>."""
    parts = line.split()
    return Sample(float(parts[0]), float(parts[1]), parts[2]) if len(parts) == 3 else None


class Poller:
    """lab/cluster/client.py in a namespace of the test network, calling one URL every
    `interval` seconds until stopped; the samples arrive while it runs."""

    def __init__(self, url: str, *, ns: str = CLIENT_NS, interval: float = 0.1, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        argv = ["ip", "netns", "exec", ns, sys.executable, str(CLIENT_SCRIPT), url,
                "--interval", str(interval), "--timeout", str(timeout)]  # fmt: skip
        self._recorder = Recorder(argv, _sample)

    def start(self) -> Poller:
        self._recorder.start()
        return self

    def stop(self) -> None:
        """Close its stdin: it finishes the requests in flight and exits."""
        self._recorder.stop(self.timeout + 5)

    def __enter__(self) -> Poller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> List[Sample]:
        return sorted(self._recorder.records(), key=lambda s: s.done)

    def first_failure(self, after: float) -> Optional[Sample]:
        return next((s for s in self.snapshot() if s.sent >= after and not s.ok), None)

    def first_answer(self, after: float) -> Optional[Sample]:
        """The first successful answer to a request sent at or after `after`."""
        return next((s for s in self.snapshot() if s.sent >= after and s.ok), None)

    def wait_answers(self, after: float, count: int = 5, timeout: float = 60.0) -> Sample:
        """Wait for `count` successful answers to requests sent after `after`; the first."""

        def answered() -> Optional[Sample]:
            oks = [s for s in self.snapshot() if s.sent >= after and s.ok]
            return oks[0] if len(oks) >= count else None

        return wait_for(answered, timeout, f"{count} answers from {self.url}", interval=0.05)

    def longest_gap(self, start: float, end: float) -> Gap:
        """Between the answers completed in [start, end]: the longest time without one, the
        slowest request, how many failed."""
        window = [s for s in self.snapshot() if start <= s.done <= end]
        oks = [s.done for s in window if s.ok]
        gaps = [b - a for a, b in zip(oks, oks[1:])]
        slowest = max((s.done - s.sent for s in window), default=0.0)
        return Gap(max(gaps, default=0.0), slowest, sum(1 for s in window if not s.ok), len(oks))


def client_get(url: str, ns: str = CLIENT_NS, timeout: float = 5.0) -> str:
    """One GET from a namespace of the test network: the HTTP status, or error:<why>."""
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            str(CLIENT_SCRIPT),
            url,
            "--count",
            "1",
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        env=NODE_ENV,
        timeout=timeout + 30,
        check=True,
    ).stdout.split()
    return out[2] if len(out) == 3 else f"error:no answer ({out})"


def api_url(host: str) -> str:
    return f"http://{host}:{CINDER_API_PORT}/"


# ----------------------------------------------------------------------------- results


@dataclass
class KillResult:
    node: str
    pids: List[int]  # as the node sees them
    detected_s: float  # kill -> the monitor's failure recorded (fail count 1)
    recovered_s: float  # kill -> the node's API answers again
    running_s: float  # kill -> crm_mon shows the clone on all nodes again
    fail_count: int
    vip_gap: Gap  # what a client of the VIP saw meanwhile
    # "agent@node" -> daemon pids, of every other service, before the kill and once settled
    neighbours_before: Dict[str, List[int]]
    neighbours_after: Dict[str, List[int]]


@dataclass
class StandbyResult:
    from_node: str
    to_node: str
    moved_s: float  # standby -> crm_mon shows the VIP on the other node
    gap: Gap  # what a client of the VIP saw
    rejoined_s: float  # unstandby -> the clone runs on both nodes again
    vip_after_unstandby: List[str]
    volume_before: List[str]  # where cinder-volume ran before the standby, and after it
    volume_after: List[str]


@dataclass
class OutageResult:
    seconds: float  # Keystone stopped this long
    tokens_deleted: Dict[str, List[str]]
    fail_counts_before: Dict[Tuple[str, str], int]
    fail_counts_after: Dict[Tuple[str, str], int]
    operations_before: Dict[Tuple[str, str], str]
    operations_after: Dict[Tuple[str, str], str]
    warnings: Dict[str, List[str]]  # node -> the agent's log lines about Keystone
    api_status: Dict[str, str]  # node -> GET / status during the outage
    token_renewed_s: float  # Keystone back -> every node cached a new token
    # OCF 1.1: (primitive, node) -> exit reason of each recurring monitor answering degraded
    # (190) during the outage; how long after the dependency was back none did; what crm_mon
    # still listed under "Failed Resource Actions" then, until the cleanup that follows.
    degraded: Dict[Tuple[str, str], str] = field(default_factory=dict)
    degraded_cleared_s: float = 0.0
    still_listed: List[str] = field(default_factory=list)


@dataclass
class ParameterChange:
    """`pcs resource update` of one service's parameters: what Pacemaker did on each node."""

    params: Dict[str, str]
    seconds: float  # the command -> the cluster settled
    pids_before: Dict[str, List[int]]  # node -> the daemon's processes
    pids_after: Dict[str, List[int]]
    operations_before: Dict[str, str]  # node -> the last start/stop/probe Pacemaker recorded
    operations_after: Dict[str, str]
    reloaded: Dict[str, List[str]]  # node -> what the agent logged of a reload-agent


@dataclass
class ChildKill:
    """A cinder-volume backend child SIGKILLed: its parent replaced it, Pacemaker did nothing."""

    node: str
    killed_pid: int  # as the node sees it
    new_pid: int
    replaced_s: float  # SIGKILL -> a new child of the same leader
    up_s: float  # SIGKILL -> every backend's row up, updated after the kill
    leader_before: int
    leader_after: int
    fail_count: int
    operations_before: Dict[Tuple[str, str], str]
    operations_after: Dict[Tuple[str, str], str]


@dataclass
class VolumeFailure:
    """A cinder-volume backend process frozen: found out through its heartbeat, restarted."""

    node: str
    frozen_pid: int  # as the node sees it
    detected_s: float  # SIGSTOP -> Pacemaker records the monitor's failure
    recovered_s: float  # SIGSTOP -> a new cinder-volume Started, its os-services rows up again
    fail_count: int
    reason: str  # the failed monitor's exit reason, as crm_mon shows it
    services: Dict[str, str]  # os-services host -> state, after the recovery


@dataclass
class VolumeMove:
    """cinder-volume taken off its node (standby, crash) and run by the other one."""

    from_node: str
    to_node: str
    moved_s: float  # the event -> cinder-volume Started on to_node
    up_s: float  # the event -> every backend's os-services row up, updated from to_node
    services: Dict[str, str]  # os-services host -> state, afterwards
    vip_gap: Optional[Gap] = None  # what a client of the VIP saw meanwhile
    fenced_s: Optional[float] = None  # a crash -> the lost node fenced (its power off, confirmed)


@dataclass
class StrayResult:
    """A cinder-volume of the same service host run outside Pacemaker, and how it ended."""

    node: str  # where it ran ("outside": the service namespace, no cluster node)
    seen_s: float  # its start -> the cluster acted (a failed monitor, or a refused start)
    settled_s: float  # its start -> exactly one cinder-volume serving the host, the resource's
    reason: str  # the exit reason crm_mon showed
    servers: int  # cinder-volume trees serving the host at the end (must be 1)


@dataclass
class DownResult:
    seconds: float
    leftovers: List[str] = field(default_factory=list)  # "pid args" of our cinder processes


# ----------------------------------------------------------------------------- deployment


def _quiet(message: str) -> None:
    log.info("%s", message)


class Deployment:
    """Network, services in cocf-svc, a 2-node cluster, the agents, and the resources.

    up() builds it all (tearing down what it built if a step fails); down() takes it all
    away and raises HarnessError if something was left.  `say` receives one plain
    sentence per step, for a person watching.
    """

    def __init__(
        self,
        stack_venv: Path,
        *,
        agent_python: str = sys.executable,
        services: Sequence[ServiceResource] = SERVICES,
        say: Say = _quiet,
        keep: bool = False,
        state_dir: Optional[str] = None,
        nodes: int = 2,
        tool: str = "pcs",
        deep_monitor_interval_s: int = 0,
        volume_mode: str = ACTIVE_PASSIVE,
    ) -> None:
        """deep_monitor_interval_s: of the depth-20 monitors (0: none, so that a scenario's
        failure is found by the depth-0 checks it is about); volume_mode active-active: a
        cinder cluster (AA_SERVICES, cinder.conf's cluster, etcd for its locks)."""
        if tool not in ("pcs", "crm"):
            raise ValueError(f"configure with pcs or crm, not {tool}")
        self.volume_mode = volume_mode
        self.nodes = nodes
        self.tool = tool  # pcs commands, or crmsh's configuration (ids p_*, cl_*)
        self.deep_monitor_interval_s = deep_monitor_interval_s
        self.stack_venv = Path(stack_venv)
        self.agent_python = agent_python
        self.services = tuple(services)
        self.say = say
        self.keep = keep
        self.state_dir = state_dir
        self.timings = Timings()
        self.network: Optional[Network] = None
        self.stack: Optional[OpenStack] = None
        self.cluster: Optional[Cluster] = None
        self._svc: Optional[ThreadPoolExecutor] = None  # a thread in cocf-svc (netns_executor)
        self._stack_root: Optional[Path] = None
        self._cluster_root: Optional[Path] = None
        self._installed: Dict[Path, Optional[bytes]] = {}  # agent file -> what it replaced
        self._created_provider_dir = False
        self._stack_future: Optional[Future[None]] = None
        self._stack_started = 0.0
        self.broker_stops: List[float] = []  # time.monotonic() of each RabbitMQ stop
        self.backend_kills: List[float] = []  # and of each cinder-volume backend child killed
        # ("<resource> on <node>", the CIB's last-rc-change) -> the start's seconds, as seen
        self._starts: Dict[Tuple[str, int], float] = {}
        self.client: Optional[Workload] = None  # the cloud user, while it runs
        self.finished_client: Optional[Workload] = None  # and once it stopped

    # --------------------------------------------------------------------- up / down

    def up(self) -> Deployment:
        start = time.monotonic()
        _check_visible_from_nodes("the stack venv", str(self.stack_venv))
        _check_visible_from_nodes("the agents' interpreter", self.agent_python)
        try:
            self._free_namespaces()
            ensure_debian_packages(*STACK_PACKAGES)
            ensure_service_user("cinder")
            self.network = Network().up()
            self._start_stack()
            self._boot_cluster()
            self._wait_stack()
            self._install_agents()
            self._configure()
        except BaseException:
            self.say("Setup did not complete: tearing down what was built.")
            try:
                self.down()
            except Exception as err:  # the setup's own error matters more; down() again retries
                log.error("teardown after a failed setup: %s", err)
            raise
        took = time.monotonic() - start
        self.timings.record("setup_s", took, "setup: services, cluster, agents, resources")
        return self

    def down(self) -> None:
        """Everything away, also after a partial up(); HarnessError lists what was left.

        What could not be taken away stays referenced, so that calling down() again retries it.
        """
        problems: List[str] = []
        if self._stack_future is not None:
            # setup ended while the services were starting: stopping them now would race
            # their start, so let that finish first
            with contextlib.suppress(Exception):
                self._stack_future.result(timeout=300)
            self._stack_future = None
        if self.cluster is not None:
            try:
                self.stop_cluster()
            except Exception as err:
                problems.append(f"cluster: {err}")
        if self.stack is not None:
            self.say("Stopping Keystone and RabbitMQ.")
            try:
                self.stack.close()
                self.stack = None
            except Exception as err:
                problems.append(f"services: {err}")
        if self._svc is not None and self.stack is None:
            self._svc.shutdown()
            self._svc = None
        problems += self._uninstall_agents()
        if self.network is not None:
            left = self.network.down()
            problems += left
            if not left:
                self.network = None
        for attr in ("_stack_root", "_cluster_root"):
            root = getattr(self, attr)
            if root is None or not root.exists():
                continue
            if self.keep or problems:  # what explains the problems, or what was asked for
                self.say(f"Kept {root} (logs and state).")
            else:
                shutil.rmtree(root, ignore_errors=True)
            if not problems:
                setattr(self, attr, None)
        if problems:
            raise HarnessError("teardown left things behind:\n" + "\n".join(problems))

    def __enter__(self) -> Deployment:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _free_namespaces(self) -> None:
        ours = [ns for ns in netns_list() if ns.startswith(NS_PREFIX)]
        if not ours:
            return
        busy = cleanup_stale(shared=True)  # deletes only namespaces without processes
        if busy:
            raise HarnessError(
                f"namespaces {busy} are in use (another cluster test or demo runs?): wait for it, "
                "or end a killed run's leftovers with `python -m lab.cluster.harness cleanup`"
            )

    def _start_stack(self) -> None:
        RUN_BASE.mkdir(parents=True, exist_ok=True)
        RUN_BASE.chmod(0o755)
        self._stack_root = Path(tempfile.mkdtemp(prefix="cluster-", dir=RUN_BASE))
        self._stack_root.chmod(0o755)
        # The catalog's Block Storage endpoints point at the VIP, as in the HA guide: the
        # volume and scheduler monitors find cinder-api's os-services there.
        self.stack = OpenStack(
            root=self._stack_root, venv=self.stack_venv, host=SVC_IP, netns=SVC_NS, endpoint_host=VIP
        )
        # One cinder.conf for both nodes: the API listens on every address of its node, and
        # reaches Keystone and RabbitMQ at 10.213.0.100.
        if self.active_active:
            # Each node its own host (its name), grouped by cluster; locks in the etcd.
            backends = {b: {"volume_driver": FAKE_HA_DRIVER} for b in ("fake1", "fake2")}
            self.stack.write_cinder_conf(
                osapi_volume_listen="0.0.0.0", host=None, cluster=AA_CLUSTER,
                coordination={"backend_url": self.stack.etcd.backend_url}, **backends,
            )  # fmt: skip
        else:
            self.stack.write_cinder_conf(osapi_volume_listen="0.0.0.0")
        self.say(
            f"Starting RabbitMQ and Keystone in the services' namespace ({SVC_IP}), and writing "
            f"the cinder.conf both nodes share: {self.stack.cinder_conf}"
        )
        self._svc = netns_executor(SVC_NS)
        self._stack_started = time.monotonic()
        self._stack_future = self._svc.submit(self._start_services)

    def _start_services(self) -> None:
        """In the services' namespace: the stack, and for a cinder cluster its etcd."""
        assert self.stack is not None
        self.stack.start()
        if self.active_active:
            self.stack.start_etcd()

    def _boot_cluster(self) -> None:
        self._cluster_root = Path(tempfile.mkdtemp(prefix=f"cocf-cluster{self.nodes}-", dir=self.state_dir))
        names = ", ".join(f"node{i}" for i in range(1, self.nodes + 1))
        self.say(f"Meanwhile booting {self.nodes} cluster node(s), {names}: Corosync + Pacemaker.")
        self.cluster = Cluster(
            self._cluster_root, nodes=self.nodes, network=self.network, keep_state=self.keep
        ).up()
        self.timings.record("cluster_up_s", self.cluster.timings["up"], "two nodes online with a DC")
        nodes = ", ".join(f"{n} ({node_ip(n)})" for n in self.cluster.nodes)
        self.say(f"Cluster formed in {self.cluster.timings['up']:.1f} s: {nodes} online.")

    def _wait_stack(self) -> None:
        assert self._stack_future is not None
        self._stack_future.result()  # kept until done: down() must not race the start
        self._stack_future = None
        took = time.monotonic() - self._stack_started
        self.timings.record("services_up_s", took, "RabbitMQ + Keystone up, cinder db synced")
        self.say(f"Keystone and RabbitMQ answer at {SVC_IP} ({took:.1f} s since their start).")

    def _install_agents(self) -> None:
        from cinder_ocf.agents import AGENTS  # noqa: PLC0415
        from cinder_ocf.cli import install_agents  # noqa: PLC0415

        self._created_provider_dir = not PROVIDER_DIR.exists()
        for name in AGENTS:
            path = PROVIDER_DIR / name
            self._installed[path] = path.read_bytes() if path.exists() else None
        written = install_agents(str(PROVIDER_DIR), self.agent_python)
        missing = [s.agent for s in self.services if str(PROVIDER_DIR / s.agent) not in written]
        if missing:
            raise HarnessError(f"no agent for {missing} in this cinder_ocf")
        self.say(f"Installed the agents: {', '.join(written)} (run by {self.agent_python}).")

    def _uninstall_agents(self) -> List[str]:
        problems = []
        for path, before in self._installed.items():
            try:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(before)
            except OSError as err:
                problems.append(f"agent {path}: {err}")
        self._installed = {}
        if self._created_provider_dir:
            with contextlib.suppress(OSError):  # not empty: someone else's files
                PROVIDER_DIR.rmdir()
            self._created_provider_dir = False
        return problems

    def plan(self, constraints: str = INDEPENDENT) -> ClusterPlan:
        """The configuration applied: what `cinder-ocf cluster-config` prints for it."""
        assert self.stack is not None
        return ClusterPlan(
            str(self.stack.cinder_conf),
            [s.agent for s in self.services],
            vip=VIP,
            cidr_netmask=24,
            monitor_interval_s=MONITOR_INTERVAL_S,
            monitor_timeout_s=MONITOR_TIMEOUT_S,
            params={s.agent: s.resource_params(self.stack) for s in self.services},
            deep_monitor_interval_s=self.deep_monitor_interval_s,
            volume_mode=self.volume_mode,
            constraints=constraints,
        )

    def _configure(self) -> None:
        start = time.monotonic()
        if self.tool == "crm":
            text = crm_configuration(self.plan())
            self.say("$ crm configure load update -   <<\n" + text)
            self.c.on(
                self.c.running_nodes[0], "crm", "configure", "load", "update", "-", input=text, timeout=120
            )
        else:
            for argv in pcs_commands(self.plan()):
                self.say("$ " + shlex.join(argv))
                self.pcs(*argv[1:])
        self.wait_started(timeout=240)
        took = self.timings.record(
            "resources_started_s", time.monotonic() - start, "pcs resource create -> everything Started"
        )
        self.say(f"Every resource is Started ({took:.1f} s after the first pcs command).")

    # --------------------------------------------------------------------- cluster helpers

    @property
    def c(self) -> Cluster:
        if self.cluster is None:
            raise HarnessError("the cluster is not up")
        return self.cluster

    def pcs(self, *argv: str, via: Optional[str] = None) -> str:
        if argv[:2] == ("resource", "cleanup"):
            self._remember_starts()  # the cleanup erases them, and the window's floor needs them
        node = via or self.c.running_nodes[0]
        return self.c.on(node, "pcs", *argv, timeout=120).stdout

    def crm_mon(self, via: Optional[str] = None) -> str:
        node = via or self.c.running_nodes[0]
        return self.c.on(node, "crm_mon", "-1", "--include=failcounts").stdout

    def wait_started(self, timeout: float = 120.0) -> float:
        """Every service active on every node (one node for non-clones), the VIP on one."""
        start = time.monotonic()
        try:
            for svc in self.services:
                self.c.wait_resource(
                    self.resource_id(svc), self.c.nodes if svc.clone else None, timeout=timeout
                )
            self.c.wait_resource(self.resource_id(None), timeout=timeout)
        except HarnessError as err:
            raise HarnessError(f"{err}\n{self.crm_mon()}") from err  # with the exit reasons
        self.c.settle(timeout)
        return time.monotonic() - start

    def primitive_id(self, agent: str) -> str:
        """The primitive's id (fail counts, operations, the pid file's name), as this
        deployment named it."""
        return f"p_{agent}" if self.tool == "crm" else agent

    def use_constraints(self, form: str) -> None:
        """Replace the constraints by those `cinder-ocf cluster-config --constraints form`
        prints (the same ids: orders replaced, colocations added), as an operator would with
        `crm configure load update`; the services keep running."""
        if self.tool != "crm":
            raise HarnessError("use_constraints loads crm's form: deploy with tool='crm'")
        lines = crm_configuration(self.plan(form)).splitlines()
        text = "\n".join(line for line in lines if line.startswith(("order ", "colocation "))) + "\n"
        self.say("$ crm configure load update -   <<\n" + text)
        self.c.on(self.c.running_nodes[0], "crm", "configure", "load", "update", "-", input=text, timeout=120)
        self.c.settle()

    def resource_id(self, svc: Optional[ServiceResource]) -> str:
        """The id crm_mon shows for a service (None: the VIP), as this deployment named it."""
        if self.tool == "crm":
            return (
                f"p_{VIP_ID}"
                if svc is None
                else (f"cl_{svc.agent}" if svc.clone else self.primitive_id(svc.agent))
            )
        return VIP_ID if svc is None else svc.id

    def vip_node(self) -> str:
        (node,) = self.c.resource_nodes(VIP_RESOURCE)
        return node

    def other_node(self, node: str) -> str:
        (other,) = [n for n in self.c.nodes if n != node]
        return other

    def wait_fenced(self, node: str, since: float, key: str, via: str) -> float:
        """Seconds from since (a power cut) until the survivor's fencer had node powered off
        (the power switch's record), once Pacemaker's fence history says it succeeded."""
        at = wait_for(lambda: self.c.fenced_since(node, since), 60, f"{node} fenced")

        def confirmed() -> Optional[str]:
            history = self.c.fence_history(node, via=via)
            return history if "successful" in history else None

        history = wait_for(confirmed, 30, f"the fencing of {node} in the history of {via}")
        fenced = self.timings.record(key, at - since, f"crash -> {node} fenced by {via}")
        self.say(f"+{fenced:.1f} s: {history.splitlines()[0]}")
        return fenced

    def fail_counts(self) -> Dict[Tuple[str, str], int]:
        return {(s.agent, n): self.c.fail_count(s.agent, n) for s in self.services for n in self.c.nodes}

    def _recorded_operations(self) -> Iterator[Tuple[str, str, ET.Element]]:
        """(resource id, node, lrm_rsc_op) of every operation the CIB's status records."""
        xml = self.c.on(self.c.running_nodes[0], "cibadmin", "--query", "--scope", "status").stdout
        for node_state in ET.fromstring(xml).iter("node_state"):
            for rsc in node_state.iter("lrm_resource"):
                for op in rsc.iter("lrm_rsc_op"):
                    yield rsc.get("id", ""), node_state.get("uname", ""), op

    def last_operations(self) -> Dict[Tuple[str, str], str]:
        """(resource, node) -> the last start/stop/probe Pacemaker recorded, with its call id.

        A restart replaces it (a new start, a new call id); monitors do not touch it.
        """
        ids = {s.agent for s in self.services} | {VIP_RESOURCE}
        return {
            (rsc, node): f"{op.get('operation')} call {op.get('call-id')} rc {op.get('rc-code')}"
            for rsc, node, op in self._recorded_operations()
            if rsc in ids and op.get("id", "").endswith("_last_0")
        }

    def starts_since(self, wall: float) -> Dict[str, float]:
        """ "<resource> on <node>" -> seconds the start took (the longest, if it started more
        than once), for each start Pacemaker ran since wall (time.time())."""
        self._remember_starts()
        found: Dict[str, float] = {}
        for (what, changed), seconds in self._starts.items():
            if changed >= int(wall):  # whole seconds, as the CIB keeps them
                found[what] = max(seconds, found.get(what, 0.0))
        return found

    def _remember_starts(self) -> None:
        """Keep the starts the CIB records as a resource's last operation on a node: a
        cleanup, a later stop or a node lost erases them."""
        for rsc, node, op in self._recorded_operations():
            if op.get("id", "").endswith("_last_0") and op.get("operation") == "start":
                key = (f"{rsc} on {node}", int(op.get("last-rc-change", "0")))
                self._starts[key] = int(op.get("exec-time", "0")) / 1000

    def recurring_monitors(self, interval_s: int) -> Dict[Tuple[str, str], Tuple[int, str]]:
        """(primitive, node) -> (rc, exit reason) of the last run of its monitor every
        interval_s, as the CIB's status records it.  Not the
        <rsc>_last_failure_0 record, which keeps an earlier result until a cleanup."""
        return {
            (rsc, node): (int(op.get("rc-code", "-1")), op.get("exit-reason", ""))
            for rsc, node, op in self._recorded_operations()
            if op.get("id") == f"{rsc}_monitor_{interval_s * 1000}"
        }

    def pid_file(self, node: str, agent: str = API.agent) -> str:
        """The pid file the agent wrote on node: <instance>.pid, cinder-api or cinder-api:N
        (p_cinder-api... in crm's form)."""
        names = self.c.on(node, "ls", HA_RSCTMP).stdout.split()
        pattern = re.compile(rf"{re.escape(self.primitive_id(agent))}(:\d+)?\.pid")
        found = [n for n in names if pattern.fullmatch(n)]
        if len(found) != 1:
            raise HarnessError(f"pid files of {agent} on {node}: {found} (in {names})")
        return f"{HA_RSCTMP}/{found[0]}"

    def leader_pid(self, node: str, agent: str = API.agent) -> int:
        """The daemon's leader as node sees it: the pid its pid file records."""
        return int(self.c.on(node, "cat", self.pid_file(node, agent)).stdout.split()[0])

    def daemon_pids(self, node: str, agent: str = API.agent) -> List[int]:
        """The daemon's processes as node sees them: the recorded leader and its session."""
        leader = self.leader_pid(node, agent)
        rows = self.c.on(node, "ps", "-e", "-o", "pid=,sid=,stat=").stdout.splitlines()
        return [int(p) for p, sid, st in (r.split() for r in rows) if int(sid) == leader and st[0] != "Z"]

    def agent_log(self, node: str) -> Path:
        """Where the agents' messages go on node: Pacemaker's log (HA_LOGFILE)."""
        return self.c.node_dir(node) / "log-pacemaker" / "pacemaker.log"

    def post_mortem(self, since: float, until: float = float("inf")) -> str:
        """The logs' warnings, errors and exit reasons from since to until (epoch seconds), and
        the os-services rows now: what a failed scenario's report shows."""
        stack, svc = self.stack, self._svc
        if stack is None or svc is None or self.cluster is None:
            return "the deployment is down: nothing to read"
        text = postmortem.report(
            since,
            stack.cinder_log_dir.glob("cinder-*.log"),
            stack.database.log_file,
            [self.agent_log(node) for node in self.c.nodes],
            until,
        )
        try:  # every row, a host's second one too
            rows = [
                f"{row.get('binary')} {row.get('host')}: {row.get('state')}, updated "
                f"{time.time() - _epoch(row.get('updated_at')):.0f} s ago"
                for row in svc.submit(stack.os_services).result(timeout=30)
            ]
        except Exception as err:  # cinder-api down is the scenario's business: say so
            rows = [f"not read: {err}"]
        return text + "\n--- os-services now\n" + "\n".join(rows)

    def our_processes(self) -> List[str]:
        """Processes anywhere on this machine (nodes included) started with our cinder.conf,
        as "pid argv": cinder daemons of this deployment only, not a colleague's."""
        if self.stack is None:
            return []
        conf = str(self.stack.cinder_conf)
        found = []
        for proc in psutil.process_iter():
            try:
                argv = proc.cmdline()
            except psutil.Error:
                continue  # gone meanwhile
            if proc.pid != os.getpid() and conf in argv and pid_alive(proc.pid):
                found.append(f"{proc.pid} {' '.join(argv).strip()}")
        return found

    # --------------------------------------------------------------------- scenarios

    def check_answers(self) -> Dict[str, str]:
        """GET / from the client namespace through the VIP and on each node's address."""
        targets = {"VIP": VIP, **{n: node_ip(n) for n in self.c.nodes}}
        answers = {}
        for name, ip in targets.items():
            answers[name] = client_get(api_url(ip))
            self.say(f"GET {api_url(ip)} from {CLIENT_NS} ({name}): {answers[name]}")
        return answers

    def kill_and_recover(self, node: str, agent: str = API.agent) -> KillResult:
        """SIGKILL of the daemon's processes on node; the monitor notices, Pacemaker restarts it."""
        svc = next(s for s in self.services if s.agent == agent)
        primitive = self.primitive_id(agent)
        url = api_url(node_ip(node))
        with Poller(url) as direct, Poller(api_url(VIP)) as through_vip:
            direct.wait_answers(0, count=3)
            through_vip.wait_answers(0, count=3)
            pids = self.daemon_pids(node, agent)
            neighbours_before = self.neighbour_pids(agent)
            self.say(f"kill -9 {' '.join(map(str, pids))}: every {agent} process on {node} dies at once.")
            t0 = time.monotonic()
            self.c.on(node, "kill", "-9", *map(str, pids))
            wait_for(
                lambda: self.c.fail_count(primitive, node) >= 1, 60, f"{agent}'s failure on {node} recorded"
            )
            detected = self.timings.record(
                "kill_detected_s", time.monotonic() - t0, f"SIGKILL -> monitor reports {agent} failed"
            )
            self.say(f"+{detected:.1f} s: the monitor (every {MONITOR_INTERVAL_S} s) found it dead.")
            outage_began = direct.first_failure(t0)
            answer = direct.wait_answers(outage_began.sent if outage_began else t0, count=1, timeout=120)
            recovered = self.timings.record(
                "kill_recovered_s", answer.done - t0, f"SIGKILL -> {agent} answers again on that node"
            )
            self.say(f"+{recovered:.1f} s: Pacemaker restarted it on {node}; {url} answers {answer.result}.")
            self.c.wait_resource(self.resource_id(svc), self.c.nodes if svc.clone else None, timeout=120)
            running = time.monotonic() - t0
            through_vip.wait_answers(time.monotonic(), count=3)
            vip_gap = through_vip.longest_gap(t0, time.monotonic())
        self.c.settle()
        fail_count = self.c.fail_count(primitive, node)
        neighbours_after = self.neighbour_pids(agent)
        restarted = sorted(k for k, v in neighbours_before.items() if neighbours_after.get(k) != v)
        self.say(
            f"The other services kept their processes: {', '.join(sorted(neighbours_before))}."
            if not restarted
            else f"Restarted with it (the constraints): {', '.join(restarted)}."
        )
        self.timings.record(
            "kill_vip_unreachable_s", vip_gap.seconds, "meanwhile, longest time the VIP answered no one"
        )
        self.say(
            f"Meanwhile the VIP's clients were never without an answer for more than "
            f"{vip_gap.seconds:.2f} s (slowest request {vip_gap.slowest:.2f} s, {vip_gap.failed} failed)."
        )
        return KillResult(
            node, pids, detected, recovered, running, fail_count, vip_gap, neighbours_before, neighbours_after
        )

    def neighbour_pids(self, agent: str) -> Dict[str, List[int]]:
        """The daemon pids of every service but agent, as "agent@node" -> pids."""
        return {
            f"{svc.agent}@{node}": self.daemon_pids(node, svc.agent)
            for svc in self.services
            if svc.agent != agent
            for node in self.c.resource_nodes(self.resource_id(svc))
        }

    def cleanup(self, agent: str = API.agent) -> None:
        """Forget the failures (pcs resource cleanup), as an operator does once it is understood."""
        self.say(f"$ pcs resource cleanup {agent}")
        self.pcs("resource", "cleanup", agent)
        self.c.settle()

    def standby_move(self) -> StandbyResult:
        """Standby of the VIP's node: the VIP moves while a client keeps calling it."""
        source = self.vip_node()
        target = self.other_node(source)
        volume_before = self.c.resource_nodes(VOLUME.id) if VOLUME in self.services else []
        with Poller(api_url(VIP)) as client:
            client.wait_answers(0, count=5)
            self.say(f"A client in {CLIENT_NS} calls GET {api_url(VIP)} every 0.1 s.")
            self.say(f"$ pcs node standby {source}   (the VIP is on {source})")
            t0 = time.monotonic()
            self.pcs("node", "standby", source, via=target)
            self.c.wait_resource(VIP_RESOURCE, [target], timeout=120, via=target)
            moved = self.timings.record(
                "standby_vip_moved_s", time.monotonic() - t0, "pcs node standby -> VIP on the other node"
            )
            self.say(f"+{moved:.1f} s: crm_mon shows the VIP on {target}.")
            client.wait_answers(time.monotonic(), count=10)
            gap = client.longest_gap(t0, time.monotonic())
        self.timings.record("standby_vip_unreachable_s", gap.seconds, "VIP answered no request (window)")
        self.timings.record("standby_slowest_request_s", gap.slowest, "slowest request through the VIP")
        self.say(
            f"The VIP answered no request for at most {gap.seconds:.2f} s; the slowest request took "
            f"{gap.slowest:.2f} s ({gap.failed} of the client's requests failed, {gap.answered} answered)."
        )
        self.c.wait_resource(API.id, [target], timeout=120)
        volume_after = []
        if volume_before:
            self.c.wait_resource(VOLUME.id, [target], timeout=180)
            volume_after = self.c.resource_nodes(VOLUME.id)
            moved_too = "moved with it" if volume_before != volume_after else "stayed"
            self.say(f"cinder-volume ran on {volume_before[0]}: it {moved_too}; now on {volume_after[0]}.")
        self.say(f"$ pcs node unstandby {source}")
        t1 = time.monotonic()
        self.pcs("node", "unstandby", source, via=target)
        self.c.wait_resource(API.id, self.c.nodes, timeout=120)
        self.c.settle()
        rejoined = self.timings.record(
            "unstandby_rejoined_s", time.monotonic() - t1, f"pcs node unstandby -> {API.agent} on both nodes"
        )
        vip_after = self.c.resource_nodes(VIP_RESOURCE)
        self.say(
            f"+{rejoined:.1f} s: {source} runs {API.agent} again; the VIP stays on {', '.join(vip_after)} "
            f"(resource stickiness)."
        )
        return StandbyResult(source, target, moved, gap, rejoined, vip_after, volume_before, volume_after)

    def keystone_outage(self, seconds: Optional[float] = None) -> OutageResult:
        """Keystone down for two monitor intervals: cinder-api must be left alone."""
        assert self.stack is not None and self._svc is not None
        seconds = seconds if seconds is not None else 2 * MONITOR_INTERVAL_S + 2
        # Every monitor must have been through Keystone once (a token cached) before it goes:
        # a resource restarted just before (unstandby) may not have one yet.
        wait_for(self._tokens_cached, 3 * MONITOR_INTERVAL_S + 10, "a cached token on every node")
        fails_before = self.fail_counts()
        ops_before = self.last_operations()
        log_offsets = {n: _size(self.agent_log(n)) for n in self.c.nodes}
        self.say("Stopping Keystone.")
        self.stack.stop_keystone()
        t0 = time.monotonic()
        # Without a cached token the next monitor must ask Keystone: the outage's real path.
        deleted = {}
        for node in self.c.nodes:
            out = self.c.on(node, "find", HA_RSCTMP, "-name", "*.token", "-print", "-delete").stdout
            deleted[node] = out.split()
        self.say(f"Deleted the monitors' cached tokens ({sum(map(len, deleted.values()))} files).")
        api_status = {n: client_get(api_url(node_ip(n))) for n in self.c.nodes}
        self.say(f"Waiting {seconds:g} s: {seconds / MONITOR_INTERVAL_S:.1f} monitor intervals.")
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        warnings = {n: _keystone_lines(self.agent_log(n), log_offsets[n]) for n in self.c.nodes}
        fails_after = self.fail_counts()
        ops_after = self.last_operations()
        degraded = self.degraded_listed()
        self.say(f"Degraded (190) monitors: {sorted(degraded)}")
        self.say("Starting Keystone again.")
        self._svc.submit(self.stack.start_keystone).result()
        outage = self.timings.record("keystone_outage_s", time.monotonic() - t0, "Keystone stopped")
        t1 = time.monotonic()

        wait_for(self._tokens_cached, 4 * MONITOR_INTERVAL_S + 10, "every monitor to cache a new token")
        token_renewed = self.timings.record(
            "keystone_token_renewed_s", time.monotonic() - t1, "Keystone back -> every monitor has a token"
        )
        # Cleared by itself: no monitor has warned about Keystone (answered degraded) for two
        # intervals, while nothing was restarted.
        wait_for(lambda: self._quiet_since(log_offsets, "Keystone", 2 * MONITOR_INTERVAL_S),
                 6 * MONITOR_INTERVAL_S + 10, "no monitor degraded by Keystone")  # fmt: skip
        cleared = self.timings.record(
            "keystone_degraded_cleared_s", time.monotonic() - t1,
            "Keystone back -> no monitor degraded for two intervals",
        )  # fmt: skip
        still_listed = self.forget_degraded()
        for node, lines in warnings.items():
            self.say(f"{node}'s log: {lines[-1] if lines else '(no warning about Keystone)'}")
        return OutageResult(
            seconds=outage,
            tokens_deleted=deleted,
            fail_counts_before=fails_before,
            fail_counts_after=fails_after,
            operations_before=ops_before,
            operations_after=ops_after,
            warnings=warnings,
            api_status=api_status,
            token_renewed_s=token_renewed,
            degraded=degraded,
            degraded_cleared_s=cleared,
            still_listed=still_listed,
        )

    def update_parameters(self, svc: ServiceResource, **params: str) -> ParameterChange:
        """pcs resource update: OCF 1.1's reload-agent when only reloadable parameters change
        (the checks'), a restart when another one does."""
        nodes = self.c.resource_nodes(svc.id)
        before = {n: self.daemon_pids(n, svc.agent) for n in nodes}
        ops_before = self._operations_of(svc, nodes)
        offsets = {n: _size(self.agent_log(n)) for n in nodes}
        words = [f"{name}={value}" for name, value in params.items()]
        self.say(f"$ pcs resource update {svc.agent} {' '.join(words)}")
        t0 = time.monotonic()
        self.pcs("resource", "update", svc.agent, *words)
        self.c.settle()
        self.c.wait_resource(svc.id, timeout=120)
        took = time.monotonic() - t0
        ops_after = self._operations_of(svc, nodes)
        after = {n: self.daemon_pids(n, svc.agent) for n in nodes}
        reloaded = {n: _lines(self.agent_log(n), offsets[n], "reload-agent:") for n in nodes}
        self.say(f"+{took:.1f} s: last operations {ops_after}; processes kept: {before == after}")
        return ParameterChange(dict(params), took, before, after, ops_before, ops_after, reloaded)

    def _operations_of(self, svc: ServiceResource, nodes: List[str]) -> Dict[str, str]:
        ops = self.last_operations()
        return {node: ops.get((svc.agent, node), "") for node in nodes}

    def current_parameter(self, svc: ServiceResource, name: str) -> str:
        """A resource parameter as the CIB has it ("" if unset)."""
        out = self.c.on(self.c.running_nodes[0], "crm_resource", "--resource", svc.agent,
                        "--get-parameter", name, check=False).stdout  # fmt: skip
        return out.strip().splitlines()[-1] if out.strip() else ""

    def degraded_listed(self) -> Dict[Tuple[str, str], str]:
        """(primitive, node) -> exit reason of each recurring monitor crm_mon lists as degraded
        (OCF 1.1's 190) under "Failed Resource Actions", where it stays, also once the monitor
        answers 0 again, until a cleanup."""
        found = {}
        for failure in self.c.crm_mon_xml().iter("failure"):
            if failure.get("exitcode") == str(int(OcfExit.DEGRADED)):
                rsc = failure.get("op_key", "").rsplit("_monitor_", 1)[0]
                found[(rsc, failure.get("node", ""))] = failure.get("exitreason", "")
        return found

    def forget_degraded(self) -> List[str]:
        """What crm_mon lists as degraded, then `pcs resource cleanup`, as an operator does
        once it is understood."""
        listed = [
            f"{rsc} on {node}: {reason}" for (rsc, node), reason in sorted(self.degraded_listed().items())
        ]
        if listed:
            self.say(f"crm_mon still lists {len(listed)} degraded monitor(s); $ pcs resource cleanup")
            self.pcs("resource", "cleanup")
            self.c.settle()
        return listed

    def volume_node(self) -> str:
        (node,) = self.c.resource_nodes(VOLUME.id)
        return node

    @property
    def active_active(self) -> bool:
        return self.volume_mode == ACTIVE_ACTIVE

    def volume_hosts(self) -> List[str]:
        """The os-services hosts of cinder-volume, one per backend: the shared host, or in
        active/active each node's own."""
        assert self.stack is not None
        hosts = list(self.c.nodes) if self.active_active else [self.stack.cinder_host]
        return [f"{host}@{backend}" for host in hosts for backend in ("fake1", "fake2")]

    def os_services(self, binary: str) -> Dict[str, Tuple[str, float]]:
        """host -> (state, updated_at as epoch seconds), from cinder-api through the VIP."""
        assert self.stack is not None and self._svc is not None
        rows = self._svc.submit(self.stack.os_services, binary).result()
        return {row["host"]: (row["state"], _epoch(row.get("updated_at"))) for row in rows}

    def _volume_up_since(self, since: float) -> Optional[Dict[str, str]]:
        """Every backend's row up and updated after `since` (epoch), or None (also while the
        API is unreachable)."""
        try:
            rows = self.os_services("cinder-volume")
        except Exception:  # the VIP moving, cinder-api restarting: asked again
            return None
        fresh = {h: rows[h][0] for h in self.volume_hosts() if h in rows and rows[h][1] > since}
        if len(fresh) == len(self.volume_hosts()) and set(fresh.values()) == {"up"}:
            return fresh
        return None

    def _children(self, node: str, leader: int) -> List[int]:
        rows = self.c.on(node, "ps", "-e", "-o", "pid=,ppid=,stat=").stdout.splitlines()
        return [int(p) for p, pp, st in (r.split() for r in rows) if int(pp) == leader and st[0] != "Z"]

    def _new_leader(self, node: str, old: int) -> bool:
        """cinder-volume Started on node again, by a process other than old."""
        if self.c.resource_nodes(VOLUME.id) != [node]:
            return False
        try:
            pid_file = self.pid_file(node, VOLUME.agent)
        except HarnessError:  # between its stop and its start
            return False
        found = self.c.on(node, "cat", pid_file, check=False).stdout.split()
        return bool(found) and found[0] != str(old)

    def kill_volume_backend(self, watch_s: float = 2 * MONITOR_INTERVAL_S + 2) -> ChildKill:
        """SIGKILL of one cinder-volume backend child: oslo.service starts a new one within
        about 2 s, and the monitors that follow see a service that healed itself.  Watched for
        watch_s after its rows are up again: Pacemaker must have done nothing."""
        node = self.volume_node()
        leader = self.leader_pid(node, VOLUME.agent)
        before = self._children(node, leader)
        victim = before[0]
        operations_before = self.last_operations()
        self.say(f"kill -9 {victim}: one cinder-volume backend child on {node} dies; its parent stays.")
        t0, wall = time.monotonic(), time.time()

        def replaced() -> Optional[int]:
            now = self._children(node, leader)
            new = [p for p in now if p not in before]
            return new[0] if len(now) == len(before) and new else None

        self.backend_kills.append(time.monotonic())
        self.c.on(node, "kill", "-9", str(victim))
        new = wait_for(replaced, 60, "a new backend child of the same parent")
        replaced_s = self.timings.record(
            "volume_child_replaced_s", time.monotonic() - t0, "SIGKILL of a backend child -> a new one"
        )
        services = wait_for(lambda: self._volume_up_since(wall), 120, "every backend's row up again")
        up_s = self.timings.record(
            "volume_child_up_s", time.monotonic() - t0, "SIGKILL of a backend child -> its rows up again"
        )
        self.say(f"+{replaced_s:.1f} s: pid {new} took its place; +{up_s:.1f} s: os-services {services}.")
        self.say(f"Watching {watch_s:g} s more: {watch_s / MONITOR_INTERVAL_S:.1f} monitor intervals.")
        time.sleep(watch_s)  # that nothing happens takes monitors to show: no event to wait for
        leader_after = self.leader_pid(node, VOLUME.agent)
        fail_count = self.c.fail_count(VOLUME.agent, node)
        return ChildKill(node, victim, new, replaced_s, up_s, leader, leader_after, fail_count,
                         operations_before, self.last_operations())  # fmt: skip

    def freeze_volume_backend(self) -> VolumeFailure:
        """SIGSTOP of one cinder-volume backend process: alive, connected, silent.  Only its
        heartbeat in os-services can tell; Pacemaker then restarts cinder-volume."""
        node = self.volume_node()
        leader = self.leader_pid(node, VOLUME.agent)
        victim = self._children(node, leader)[0]
        self.say(
            f"kill -STOP {victim}: one cinder-volume backend process on {node} freezes. Its "
            f"process is there and its AMQP connection open; only its heartbeat stops."
        )
        t0 = time.monotonic()
        self.c.on(node, "kill", "-STOP", str(victim))
        try:
            wait_for(lambda: self.c.fail_count(VOLUME.agent, node) >= 1, 120, "the frozen backend noticed")
            detected = self.timings.record(
                "volume_freeze_detected_s", time.monotonic() - t0, "SIGSTOP of a backend -> monitor failure"
            )
            reason = _failure_line(self.crm_mon(), VOLUME.agent)
            self.say(f"+{detected:.1f} s: the monitor failed it: {reason}")
            wait_for(lambda: self._new_leader(node, leader), 180, "a new cinder-volume started")
            restarted = time.time()
            services = wait_for(lambda: self._volume_up_since(restarted), 120, "cinder-volume up again")
        finally:
            # Pacemaker's stop ends the frozen process (SIGTERM, then SIGCONT): if it is still
            # there, the scenario failed before that, and it must not stay frozen.
            self.c.on(node, "kill", "-CONT", str(victim), check=False)
        self.c.wait_resource(VOLUME.id, timeout=120)
        recovered = self.timings.record(
            "volume_freeze_recovered_s", time.monotonic() - t0, "SIGSTOP -> cinder-volume restarted, rows up"
        )
        self.say(f"+{recovered:.1f} s: Pacemaker restarted cinder-volume; os-services: {services}.")
        self.c.settle()
        return VolumeFailure(
            node, victim, detected, recovered, self.c.fail_count(VOLUME.agent, node), reason, services
        )

    def standby_volume_node(self) -> VolumeMove:
        """Standby of cinder-volume's node: it moves, and is the same service in os-services."""
        source = self.volume_node()
        target = self.other_node(source)
        self.say(f"$ pcs node standby {source}   (cinder-volume runs there)")
        t0 = time.monotonic()
        self.pcs("node", "standby", source, via=target)
        self.c.wait_resource(VOLUME.id, [target], timeout=180, via=target)
        moved = self.timings.record(
            "volume_standby_moved_s", time.monotonic() - t0, f"standby -> cinder-volume Started on {target}"
        )
        wall = time.time()  # the old instance has stopped: a row updated from now on is the new one's
        services = wait_for(
            lambda: self._volume_up_since(wall), 120, "cinder-volume rows up from the new node"
        )
        up = self.timings.record(
            "volume_standby_up_s", time.monotonic() - t0, "standby -> os-services rows up, from the new node"
        )
        self.say(f"+{moved:.1f} s: cinder-volume runs on {target}; +{up:.1f} s: os-services {services}.")
        self.say(f"$ pcs node unstandby {source}")
        self.pcs("node", "unstandby", source, via=target)
        self.wait_started()
        return VolumeMove(source, target, moved, up, services)

    def crash_volume_node(self) -> VolumeMove:
        """Power cut of cinder-volume's node (its PID namespace killed); the survivor takes over."""
        source = self.volume_node()
        target = self.other_node(source)
        with Poller(api_url(VIP)) as client:
            client.wait_answers(0, count=3)
            self.say(f"Power cut of {source}: its PID 1 gets SIGKILL, and with it every process there.")
            t0, wall = time.monotonic(), time.time()  # the old instance dies with its node
            self.c.crash(source)
            fenced = self.wait_fenced(source, t0, "volume_crash_fenced_s", via=target)
            self.c.wait_resource(VOLUME.id, [target], timeout=180, via=target)
            moved = self.timings.record(
                "volume_crash_moved_s", time.monotonic() - t0, f"crash -> cinder-volume Started on {target}"
            )
            services = wait_for(
                lambda: self._volume_up_since(wall), 120, "cinder-volume rows up on the survivor"
            )
            up = self.timings.record(
                "volume_crash_up_s", time.monotonic() - t0, "crash -> os-services rows up, from the survivor"
            )
            client.wait_answers(time.monotonic(), count=5, timeout=120)
            gap = client.longest_gap(t0, time.monotonic())
        self.timings.record(
            "volume_crash_vip_unreachable_s", gap.seconds, "meanwhile, VIP answered no request"
        )
        self.say(
            f"+{moved:.1f} s: cinder-volume runs on {target}; +{up:.1f} s: os-services {services}; "
            f"the VIP answered no request for at most {gap.seconds:.2f} s."
        )
        return VolumeMove(source, target, moved, up, services, gap, fenced)

    def volume_servers(self) -> List[int]:
        """Leaders of the cinder-volume trees running with the deployment's cinder.conf (or a
        copy of it named cinder-copy.conf), anywhere on this machine."""
        leaders = []
        for proc in psutil.process_iter(["cmdline", "ppid"]):
            argv = proc.info["cmdline"] or []
            if any(a.endswith("/cinder-volume") for a in argv[:3]) and any(a.endswith(".conf") for a in argv):
                try:
                    parent = psutil.Process(proc.info["ppid"]).cmdline()
                except psutil.Error:
                    parent = []
                if not any(a.endswith("/cinder-volume") for a in parent[:3]):
                    leaders.append(proc.pid)
        return leaders

    def _stray_argv(self, config: Path) -> List[str]:
        assert self.stack is not None
        binary = str(self.stack.cinder_bin("cinder-volume"))
        return ["runuser", "-u", self.stack.service_user, "--", binary, "--config-file", str(config)]

    def stray_on_the_other_node(self) -> StrayResult:
        """`cinder-volume &` by hand on the node that does not run the resource, with the shared
        cinder.conf: the running resource's monitor counts a second server on its queues, the
        restart that follows refuses while the copy reports, and the start on the copy's node
        ends it (a copy of the resource there) and takes over."""
        assert self.stack is not None
        source = self.volume_node()
        node = self.other_node(source)
        self.say(f"On {node}, by hand: cinder-volume --config-file {self.stack.cinder_conf} &")
        t0 = time.monotonic()
        proc = self.c.spawn_on(node, *self._stray_argv(self.stack.cinder_conf), output=self._log_of("stray"))
        try:
            wait_for(lambda: self.c.fail_count(VOLUME.agent, source) >= 1, 120, "the second server noticed")
            seen = self.timings.record(
                "stray_seen_s",
                time.monotonic() - t0,
                "a copy on the other node -> a monitor failure recorded",
            )
            reason = _failure_line(self.crm_mon(), VOLUME.agent)
            wait_for(lambda: proc.poll() is not None and self.c.resource_nodes(VOLUME.id) != [], 180,
                     "the copy ended and cinder-volume Started")  # fmt: skip
            wait_for(lambda: len(self.volume_servers()) == 1, 60, "exactly one cinder-volume")
            settled = self.timings.record(
                "stray_settled_s",
                time.monotonic() - t0,
                "a copy on the other node -> one cinder-volume, the resource's",
            )
        finally:
            if proc.poll() is None:
                self.c.end_spawned(proc)
        servers = len(self.volume_servers())
        self.say(
            f"+{seen:.1f} s: {reason}; +{settled:.1f} s: {servers} cinder-volume, on {self.volume_node()}."
        )
        self.pcs("resource", "cleanup", VOLUME.id)
        self.wait_started()
        return StrayResult(node, seen, settled, reason, servers)

    def stray_outside_during_standby(self) -> StrayResult:
        """A cinder-volume of the same host outside the cluster (the service namespace, a copy
        of cinder.conf) when Pacemaker starts the resource on another node: the start refuses,
        with its reason in crm_mon, and succeeds once the copy is gone and the failure cleaned
        up.  The resource is stopped (disabled) while the copy starts, so that its own monitor,
        which would count the copy's consumers first, does not race the start's guard."""
        assert self.stack is not None
        source = self.volume_node()
        target = self.other_node(source)
        copy = self.stack.cinder_conf.with_name("cinder-copy.conf")
        shutil.copyfile(self.stack.cinder_conf, copy)
        copy.chmod(0o644)
        self.say(
            f"$ pcs resource disable {VOLUME.id}; outside the cluster: cinder-volume --config-file {copy} &"
        )
        self.pcs("resource", "disable", VOLUME.id, via=target)
        self.c.wait_resource(VOLUME.id, [], timeout=120, via=target)
        with open(self._log_of("outside"), "ab") as sink:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", SVC_NS, *self._stray_argv(copy)], stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            began = time.time()
            wait_for(lambda: self._volume_up_since(began), 120, "the copy reporting in os-services")
            self.say(
                f"$ pcs node standby {source}; pcs resource enable {VOLUME.id}   (so it starts on {target})"
            )
            self.pcs("node", "standby", source, via=target)

            # The VIP and cinder-api settle on the target first: this scenario is the guard
            # seeing the copy's heartbeat.  A start while os-services cannot be read for longer
            # than the guard asks again goes ahead, and the monitor's count finds the copy
            # (a loaded run here: 18 s later); that is another scenario's to show.
            def settled() -> bool:
                return self.c.resource_nodes(VIP_RESOURCE) == [target] and client_get(api_url(VIP)) in API_OK

            wait_for(settled, 120, "the VIP and cinder-api answering from the target")
            t0 = time.monotonic()
            self.pcs("resource", "enable", VOLUME.id, via=target)
            wait_for(
                lambda: self.c.fail_count(VOLUME.agent, target) >= 1, 120, "the start on the target refused"
            )
            seen = self.timings.record(
                "stray_refused_s",
                time.monotonic() - t0,
                "a copy outside, enable -> the start on the target refused",
            )
            crm = self.crm_mon(via=target)
            reason = next(
                (line.strip() for line in crm.splitlines() if "is served by another" in line), crm[-300:]
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        t1, gone = time.monotonic(), time.time()
        self.pcs("resource", "cleanup", VOLUME.id, via=target)
        # Started, and serving: crm_mon may still list the refused start's resource as active.
        wait_for(
            lambda: (
                self.c.resource_nodes(VOLUME.id) == [target]
                and len(self.volume_servers()) == 1
                and self._volume_up_since(gone)
            ),
            180,
            "cinder-volume serving from the target",
        )
        settled = self.timings.record(
            "stray_gone_started_s",
            time.monotonic() - t1,
            "copy gone, cleanup -> cinder-volume up again, from the target",
        )
        servers = len(self.volume_servers())
        self.say(f"+{seen:.1f} s: refused ({reason}); started {settled:.1f} s after the copy ended.")
        self.pcs("node", "unstandby", source, via=target)
        self.wait_started()
        copy.unlink()
        return StrayResult("outside", seen, settled, reason, servers)

    def _log_of(self, what: str) -> Path:
        assert self._stack_root is not None
        return self._stack_root / f"{what}-cinder-volume.log"

    def rabbitmq_outage(self, seconds: Optional[float] = None) -> OutageResult:
        """RabbitMQ down for two monitor intervals: nothing may be restarted."""
        assert self.stack is not None and self._svc is not None
        seconds = seconds if seconds is not None else 2 * MONITOR_INTERVAL_S + 2
        fails_before = self.fail_counts()
        ops_before = self.last_operations()
        log_offsets = {n: _size(self.agent_log(n)) for n in self.c.running_nodes}
        self.say("Stopping RabbitMQ.")
        self.broker_stops.append(time.monotonic())
        self.stack.stop_rabbitmq()
        t0 = time.monotonic()
        api_status = {n: client_get(api_url(node_ip(n))) for n in self.c.running_nodes}
        self.say(f"Waiting {seconds:g} s: {seconds / MONITOR_INTERVAL_S:.1f} monitor intervals.")
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        degraded = self.degraded_listed()
        self.say(f"Degraded (190) monitors: {sorted(degraded)}")
        self.say("Starting RabbitMQ again.")
        self._svc.submit(self.stack.start_rabbitmq).result()
        outage = self.timings.record("rabbitmq_outage_s", time.monotonic() - t0, "RabbitMQ stopped")
        t1 = time.monotonic()
        # oslo.messaging retries with a growing pause (up to 31 s): wait until no monitor
        # warns about the broker for two intervals, while nothing may be restarted.
        wait_for(lambda: self._quiet_since(log_offsets, "AMQP", 2 * MONITOR_INTERVAL_S), 150,
                 "every service reconnected to RabbitMQ")  # fmt: skip
        self.timings.record(
            "rabbitmq_reconnected_s", time.monotonic() - t1, "RabbitMQ back -> no monitor warns of it"
        )
        warnings = {n: _warnings(self.agent_log(n), log_offsets[n], "AMQP") for n in self.c.running_nodes}
        fails_after, ops_after = self.fail_counts(), self.last_operations()
        return OutageResult(
            seconds=outage, tokens_deleted={}, fail_counts_before=fails_before,
            fail_counts_after=fails_after, operations_before=ops_before,
            operations_after=ops_after, warnings=warnings, api_status=api_status,
            token_renewed_s=0.0, degraded=degraded, still_listed=self.forget_degraded(),
        )  # fmt: skip

    def _quiet_since(self, offsets: Dict[str, int], word: str, seconds: float) -> bool:
        """No warning containing word in any node's log for the last `seconds`."""
        cutoff = time.time() - seconds
        for node in self.c.running_nodes:
            for line in _warnings(self.agent_log(node), offsets[node], word):
                stamp = _log_time(line)
                if stamp is None or stamp >= cutoff:
                    return False
        # and at least one warning was there to go quiet after (the outage was seen)
        return any(_warnings(self.agent_log(n), offsets[n], word) for n in self.c.running_nodes)

    def _tokens_cached(self) -> bool:
        return all(self.c.on(n, "find", HA_RSCTMP, "-name", "*.token").stdout.strip() for n in self.c.nodes)

    # --------------------------------------------------------------------- the cloud user

    def start_client(self, workers: int = 2) -> Workload:
        """A tenant's volumes through the VIP with python-cinderclient, for as long as the
        deployment runs (lab/cluster/workload.py); view(start, end) says what it saw."""
        assert self.stack is not None and self._svc is not None
        if self.client is None:
            tenant = self._svc.submit(self.stack.tenant).result()  # Keystone is in SVC_NS
            self.client = Workload(self.stack_venv / "bin" / "python", tenant, workers=workers)
            self.client.start()
            self.say(
                f"A cloud user in {CLIENT_NS} creates, extends and deletes volumes through {VIP} "
                f"(python-cinderclient, {workers} at a time) while the scenarios run."
            )
        return self.client

    def hold_volume(self) -> Held:
        """A volume of the cloud user's, available, made before a fault."""
        assert self.stack is not None and self._svc is not None
        stack = self.stack
        return self._svc.submit(lambda: workload.hold(stack, stack.tenant())).result()

    def manage_held(self, held: Held) -> Managed:
        """After the fault: whether the user can still extend and delete it, how soon, and
        through the same service host."""
        assert self.stack is not None and self._svc is not None
        stack = self.stack
        managed = self._svc.submit(lambda: workload.manage(stack, stack.tenant(), held)).result()
        if managed.extended_s is None:
            self.say(f"The volume made before could not be extended: {managed.why}")
            return managed
        host = managed.host_after or "?"
        if managed.host_after != held.host:
            host += f" (it was {held.host})"
        self.say(
            f"The volume made before: extended {managed.extended_s:.1f} s after the first try, "
            f"{'deleted' if managed.deleted else 'NOT deleted: ' + managed.why}, service host {host}."
        )
        return managed

    def stop_client(self) -> List[Request]:
        """The user stops, deletes what it made, and says how each volume ended."""
        client, self.client = self.client, None
        if client is None:
            return []
        finals = client.stop()
        left = [f"{r.volume} {r.result}" for r in finals if r.result != "deleted"]
        self.say(
            f"The cloud user stopped: {len(finals)} volumes made, all deleted."
            if not left
            else f"The cloud user stopped: {len(finals)} volumes made; not deleted: {', '.join(left)}."
        )
        self.finished_client = client
        return finals

    def stop_cluster(self) -> DownResult:
        """Stop Pacemaker and Corosync on every node (they stop the resources first)."""
        self.stop_client()  # its clean-up needs the cluster
        if self.cluster is None:
            return DownResult(0.0, self.our_processes())
        cluster, self.cluster = self.cluster, None
        self.say("Stopping the cluster: Pacemaker stops every resource, then itself and Corosync.")
        start = time.monotonic()
        try:
            cluster.down(keep_state=self.keep)
        finally:
            took = self.timings.record("cluster_down_s", time.monotonic() - start, "cluster stopped")
        leftovers = self.our_processes()
        left = "none" if not leftovers else "; ".join(leftovers)
        self.say(f"Cluster down in {took:.1f} s. cinder processes left: {left}.")
        return DownResult(took, leftovers)


def stack_venv_for_nodes(say: Say = _quiet) -> Path:
    """The OpenStack venv (built if needed) at a path the nodes see.

    $CINDER_OCF_STACK_VENV is used unless the nodes cannot see it (a developer's venv in
    /tmp: each node has its own /tmp); then the default venv is, with a notice.
    """
    venv = stack_venv_path()
    if _node_private(str(venv)):
        say(
            f"The stack venv {venv} is under {_node_private(str(venv))}, which each cluster node has "
            f"its own of: using {DEFAULT_VENV} instead (built if missing)."
        )
        return ensure_stack_venv(DEFAULT_VENV)
    return ensure_stack_venv()


def _node_private(path: str) -> Optional[str]:
    """The node-private directory path is under, if any."""
    absolute = Path(os.path.abspath(path))  # not resolve(): a venv's python is a symlink
    for private in map(Path, NODE_PRIVATE):
        if absolute == private or private in absolute.parents:
            return str(private)
    return None


def _check_visible_from_nodes(what: str, path: str) -> None:
    private = _node_private(path)
    if private:
        raise HarnessError(
            f"{what} {path} is under {private}, which every cluster node has its own of: "
            f"the nodes cannot run it. Use a path they share, e.g. under /var/tmp."
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _lines(path: Path, offset: int, word: str) -> List[str]:
    """Lines containing word written to a log after offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if word in line]


def _warnings(path: Path, offset: int, word: str) -> List[str]:
    """Warnings containing word written to a log after offset."""
    return [line for line in _lines(path, offset, word) if "WARN" in line.upper()]


def _keystone_lines(path: Path, offset: int) -> List[str]:
    return _warnings(path, offset, "Keystone")


def _log_time(line: str) -> Optional[float]:
    """The epoch time of a pacemaker.log line ("Nov 26 06:40:01 node1 ..."), this year."""
    try:
        moment = time.strptime(f"{time.localtime().tm_year} {line[:15]}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return None
    return time.mktime(moment)


def _epoch(stamp: object) -> float:
    """os-services' updated_at (UTC, no zone) as epoch seconds; 0 when absent."""
    if not isinstance(stamp, str):
        return 0.0
    moment = datetime.fromisoformat(stamp.rstrip("Z"))
    return moment.replace(tzinfo=timezone.utc).timestamp()


def _failure_line(crm_mon: str, agent: str) -> str:
    """The failed action of agent, as crm_mon lists it (with the agent's exit reason)."""
    lines = [line.strip() for line in crm_mon.splitlines() if agent in line and "monitor" in line]
    return lines[-1] if lines else "(no failed action listed)"
