"""Real Pacemaker + Corosync clusters on this one machine, one node per set of namespaces.

Layout (names and addresses are fixed, see the constants below)::

    cocf-net     network namespace holding the Linux bridge br0: the cluster's "switch"
    cocf-nodeN   one per node: eth0 = 10.213.0.N/24, its peer p-nodeN is a port of br0
    cocf-svc     10.213.0.100/24: shared services (Keystone, RabbitMQ, ...), started by
                 the services harness with ``ip netns exec cocf-svc ...``
    cocf-client  10.213.0.200/24: where the tests stand to reach the VIP 10.213.0.50

Nothing is ever configured in the host's own network namespace.

A node is a tiny Python init that is PID 1 of its own PID namespace, started inside
cocf-nodeN with new mount, UTS and IPC namespaces.  Why each of them:

* network: libqb IPC (cib_rw, crmd, cpg, ...) uses abstract unix sockets, which are scoped
  per network namespace, so every node gets its own IPC endpoints.  IPaddr2 adds the VIP
  to the node's own eth0.
* mount: per-node directories from the state root are bind mounted over /etc/corosync,
  /var/lib/corosync, /var/lib/pacemaker, /var/log/corosync, /var/log/pacemaker, /etc/hosts
  and /tmp; fresh tmpfs go on /run (HA_RSCTMP=/run/resource-agents lives there) and
  /dev/shm (libqb ring buffers are named after PIDs, which collide across PID namespaces).
  A crash loses both tmpfs, like a reboot would.  Everything else is the host's: /usr (so
  the agents the tests install under /usr/lib/ocf/resource.d) and /var/tmp (state shared
  with the services).
* PID: agents that look for their daemons only see their own node's processes, the init
  reaps orphans at once (this machine's PID 1 reaps only every ~2 s), and SIGKILL of the
  init is a perfect power cut: the kernel kills the whole namespace.
* UTS: the node's hostname is its Pacemaker node name.

Fencing is on, as production runs an active/passive cinder-volume: every cluster has one
fence device, the lab's fence_cocf (lab/cluster/fencing.py), which Pacemaker's fencer runs from
/usr/sbin (a read-only overlay of the node's own) and which asks the harness's power switch, a
thread of this process, to cut a node's power: the same SIGKILL of its PID 1 as crash().

corosync and pacemakerd are started with nsenter into the node; nsenter stays their parent
and exits with them, so every process this module starts is a child of a subprocess.Popen
it holds: "gone" is a reaped Popen, never a guess, and nothing is ever stopped by name.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, TypeVar, Union

import psutil

from lab.cluster.fencing import AGENT, AGENT_NAME, DEVICE_ID, NODE_SOCKET_DIR, PowerSwitch
from lab.host import children, pid_alive

log = logging.getLogger(__name__)

SUBNET = "10.213.0"
PREFIX_LEN = 24
NS_PREFIX = "cocf-"
NET_NS = "cocf-net"
BRIDGE = "br0"
SVC_NS = "cocf-svc"
SVC_IP = f"{SUBNET}.100"
CLIENT_NS = "cocf-client"
CLIENT_IP = f"{SUBNET}.200"
VIP = f"{SUBNET}.50"
MAX_NODES = 9  # node N is 10.213.0.N: stays clear of the VIP and the service addresses

# Pacemaker's INFINITY score, returned by fail_count() for a fail count of "INFINITY".
PCMK_INFINITY = 1_000_000

# What a root login on a real node has.  The daemons (and so the agents they run) must not
# inherit the test runner's PATH (pyenv shims, virtualenvs) or its Python settings.
NODE_ENV: Dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
}
# pacemakerd always stays in the foreground; there is no syslog daemon to log to.
PACEMAKER_ENV: Dict[str, str] = {
    **NODE_ENV,
    "PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
    "PCMK_logfacility": "none",
}

# Debian's interpreter for the node init: always there on a node, starts in ~10 ms.
_INIT_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

# PID 1 of a node.  It reaps orphans the moment they die, and exits on SIGTERM: the kernel
# then SIGKILLs everything left in the node's PID namespace.  "ready" on stdout tells the
# harness that the handlers are in place (a PID 1 ignores signals it has no handler for).
_INIT_CODE = """
import os, signal
def reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
signal.signal(signal.SIGCHLD, reap)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
reap()
os.write(1, b"ready\\n")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
while True:
    signal.pause()
"""

T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]


class HarnessError(RuntimeError):
    """The harness could not do what it was asked to."""


class HarnessTimeout(HarnessError):
    """Something did not happen in time."""


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes the command's output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {_clip(self.stdout)}\nstderr: {_clip(self.stderr)}"


def _clip(text: Optional[str], limit: int = 2000) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


# ----------------------------------------------------------------------------- processes


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60.0,
    input: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv and capture its text output.

    The command gets a session of its own, so that on timeout (or Ctrl-C) its whole
    process group, whose ID is the command's own PID, can be killed: commands run through
    nsenter leave their real work to a child.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, list(argv), out, err)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _kill_group(proc: Union[subprocess.Popen[str], subprocess.Popen[bytes]]) -> None:
    # A PGID stays reserved while any member lives, so this cannot hit a stranger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_for(fn: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call fn until it returns something truthy, and return that; HarnessTimeout if never."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _pid_namespace(pid: int) -> Optional[str]:
    """The PID namespace pid is in ("pid:[inode]"), None if it is gone (psutil has no word
    for namespaces: the kernel's link names it)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _is_node_init(pid: int) -> bool:
    """Whether pid is the PID 1 of a node: the init script, in a PID namespace of its own (its
    parent `unshare` runs the same command line in ours)."""
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    theirs = _pid_namespace(pid)
    return (
        bool(argv)
        and argv[-1].endswith("/cocf-init.py")
        and theirs not in (None, _pid_namespace(os.getpid()))
    )


def _first_descendant_in_new_pidns(pid: int, timeout: float, what: str) -> int:
    """PID (as seen from here) of the first descendant of pid living in a deeper PID ns.

    That is the node's init under `unshare --pid --fork`, or the daemon that
    `nsenter -p` forked - however many wrappers (ip netns exec) sit in between.
    """
    own = _pid_namespace(os.getpid())

    def find() -> Optional[int]:
        todo = children(pid)
        while todo:
            candidate = todo.pop(0)
            # a descendant in another PID namespace than ours is in a deeper one
            if _pid_namespace(candidate) not in (own, None):
                return candidate
            todo += children(candidate)
        return None

    return wait_for(find, timeout, what, interval=0.02)


def _signal(pid: int, sig: signal.Signals) -> None:
    # it may have exited between our check and now: that is what we wanted anyway
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


# ----------------------------------------------------------------------------- network


def node_name(index: int) -> str:
    return f"node{index}"


def node_index(node: str) -> int:
    suffix = node[len("node") :]
    if not node.startswith("node") or not suffix.isdigit() or not 1 <= int(suffix) <= MAX_NODES:
        raise ValueError(f"not a node name: {node!r} (node1 .. node{MAX_NODES})")
    return int(suffix)


def node_ip(node: str) -> str:
    """The address of nodeN: 10.213.0.N."""
    return f"{SUBNET}.{node_index(node)}"


def node_ns(node: str) -> str:
    """The network namespace of a node: cocf-nodeN."""
    return f"{NS_PREFIX}{node}"


def netns_list() -> List[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    lines = run(["ip", "netns", "list"], env=NODE_ENV).stdout.splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def netns_pids(ns: str) -> List[int]:
    """Live processes in a network namespace (zombies have no namespace any more)."""
    out = run(["ip", "netns", "pids", ns], check=False, env=NODE_ENV).stdout
    return [int(pid) for pid in out.split()]


def ns_exec(
    ns: str, *argv: str, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a command in a network namespace of ours (e.g. CLIENT_NS)."""
    return run(["ip", "netns", "exec", ns, *argv], check=check, timeout=timeout, env=NODE_ENV)


def ping(ip: str = VIP, from_ns: str = CLIENT_NS) -> bool:
    """One ICMP echo, one second to answer."""
    return ns_exec(from_ns, "ping", "-c1", "-W1", ip, check=False, timeout=10).returncode == 0


_CLONE_NEWNET = 0x40000000


def join_netns(ns: str) -> None:
    """Move the calling thread, and only it, into the network namespace ns.

    Network namespaces are per thread: the rest of the process stays where it is, and
    processes this thread starts are born in ns.  Used through netns_executor().
    """
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns = getattr(os, "setns", None)  # Python >= 3.12
        if setns is not None:
            setns(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {ns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def netns_executor(ns: str) -> ThreadPoolExecutor:
    """One worker thread that lives in network namespace ns.

    What it runs reaches that namespace's addresses: e.g. the services harness, which
    talks HTTP to the Keystone it starts in SVC_NS, from a test process that stays in the
    host's namespace (where nothing of ours is configured).  shutdown() it when done.
    """
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=f"netns-{ns}", initializer=join_netns, initargs=(ns,)
    )


class Network:
    """The bridge, the service and client namespaces, and the node namespaces.

    up() adopts cocf-net, cocf-svc and cocf-client if they exist already with their
    address (the services harness may have created them first); down() deletes only
    what this object created, and never a namespace that still has processes in it
    (they would live on in a namespace nobody can name).
    """

    def __init__(self) -> None:
        self.created: List[str] = []
        # nsfs inode of every namespace we created, still known after its deletion:
        # a process left in it is found by /proc/PID/ns/net.
        self.inodes: Dict[str, int] = {}

    def up(self) -> Network:
        existing = netns_list()
        if NET_NS not in existing:
            self._add_ns(NET_NS)
            # no STP, no forwarding delay: ports forward the moment they are up
            _ip("-n", NET_NS, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0")
            _ip("-n", NET_NS, "link", "set", BRIDGE, "up")
        elif run(["ip", "-n", NET_NS, "link", "show", BRIDGE], check=False).returncode:
            raise HarnessError(f"namespace {NET_NS} exists without {BRIDGE}: not ours?")
        self._attach(SVC_NS, SVC_IP, adopt=True)
        self._attach(CLIENT_NS, CLIENT_IP, adopt=True)
        return self

    def add_node(self, node: str) -> None:
        self._attach(node_ns(node), node_ip(node), adopt=False)

    def remove(self, ns: str) -> List[str]:
        """Delete a namespace we created; returns the problems (empty if none)."""
        if ns not in self.created:
            return []
        pids = netns_pids(ns)
        if pids:
            return [f"namespace {ns} kept: processes still in it: {pids}"]
        run(["ip", "netns", "delete", ns])
        self.created.remove(ns)
        return []

    def down(self) -> List[str]:
        problems: List[str] = []
        for ns in reversed(list(self.created)):  # the bridge's namespace last
            problems += self.remove(ns)
        return problems

    def _attach(self, ns: str, ip: str, *, adopt: bool) -> None:
        """ns with eth0 = ip, plugged into the bridge."""
        if ns in netns_list():
            if adopt and _has_address(ns, ip):
                return  # set up by someone else, e.g. the services harness
            why = f"has no {ip}" if adopt else "is another cluster's, or left by a killed run"
            raise HarnessError(
                f"namespace {ns} exists already and {why} "
                "(`python -m lab.cluster.harness cleanup` ends what a killed run left)"
            )
        self._add_ns(ns)
        port = "p-" + ns[len(NS_PREFIX) :]
        # Both ends are created in our namespaces: the host's own namespace is never touched.
        _ip("-n", NET_NS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", NET_NS, "link", "set", port, "master", BRIDGE, "up")
        _ip("-n", ns, "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")

    def _add_ns(self, ns: str) -> None:
        run(["ip", "netns", "add", ns], env=NODE_ENV)
        self.created.append(ns)
        self.inodes[ns] = os.stat(f"/run/netns/{ns}").st_ino
        _ip("-n", ns, "link", "set", "lo", "up")


def _ip(*args: str) -> None:
    run(["ip", *args], env=NODE_ENV)


def _has_address(ns: str, ip: str) -> bool:
    out = run(["ip", "-n", ns, "-o", "-4", "addr", "show"], check=False, env=NODE_ENV).stdout
    return f" {ip}/" in out


def cleanup_stale(*, kill: bool = False, shared: bool = False) -> List[str]:
    """Delete node namespaces (cocf-nodeN) left by an earlier run; return those in use.

    By default only namespaces without processes go: the conftest calls it at every start,
    and a node in use may be a colleague's running cluster.  kill=True (the command line,
    after a test run was SIGKILLed) first SIGKILLs the PID 1 of every node found there,
    which ends that whole node.  shared=True also deletes empty cocf-net/-svc/-client.
    """
    busy = []
    for ns in netns_list():
        is_node = ns.startswith(f"{NS_PREFIX}node")
        if not ns.startswith(NS_PREFIX) or not (is_node or shared):
            continue
        if is_node and kill and netns_pids(ns):
            for pid in netns_pids(ns):
                if _is_node_init(pid):
                    _signal(pid, signal.SIGKILL)
            with contextlib.suppress(HarnessTimeout):
                wait_for(lambda ns=ns: not netns_pids(ns), 15, f"processes in {ns} to end")
        if netns_pids(ns):
            busy.append(ns)
        else:
            run(["ip", "netns", "delete", ns], env=NODE_ENV)
    return busy


# ----------------------------------------------------------------------------- nodes


@dataclass
class _Daemon:
    nsenter: subprocess.Popen[bytes]  # exits when the daemon does
    pid: int  # the daemon's PID as seen from here


@dataclass
class _Node:
    name: str
    dir: Path
    unshare: Optional[subprocess.Popen[bytes]] = None  # parent of the init
    init_pid: int = 0  # the init's PID as seen from here
    daemons: Dict[str, _Daemon] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.unshare is not None and self.unshare.poll() is None


class Cluster:
    """A real Pacemaker + Corosync cluster of 1..9 nodes (tested: 1 and 2) on this machine.

    Usage::

        with Cluster("/var/tmp/state", nodes=2) as cluster:
            cluster.on("node1", "pcs", "resource", "create", "d1", "ocf:heartbeat:Dummy")
            cluster.wait_resource("d1")

    All waits return the seconds they took; `timings` keeps those of up/boot/down.
    """

    def __init__(
        self,
        root: PathLike,
        nodes: int = 2,
        *,
        network: Optional[Network] = None,
        keep_state: bool = False,
        dc_deadtime: str = "2s",
        recheck_interval: str = "1min",
        stickiness: int = 100,
        token_ms: int = 1000,
        cluster_name: str = "cocf",
        fencing: bool = True,
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES}")
        self.root = Path(root)
        self.keep_state = keep_state
        self.dc_deadtime = dc_deadtime
        self.recheck_interval = recheck_interval
        self.stickiness = stickiness
        self.token_ms = token_ms
        self.cluster_name = cluster_name
        self.fencing = fencing
        # the power switch behind fence_cocf: fencing on, as production runs (see lab.cluster.fencing)
        self.switch: Optional[PowerSwitch] = None
        # a node's power: held while an init starts or is ended, by the tests or by the switch
        self._power = threading.RLock()
        self._own_network = network is None
        self.network = network or Network()
        self._nodes = {
            name: _Node(name, self.root / name) for name in (node_name(i) for i in range(1, nodes + 1))
        }
        self._pidns: Set[str] = set()  # "pid:[inode]" of every node PID ns ever booted
        self._started = False
        self.timings: Dict[str, float] = {}

    # --------------------------------------------------------------------- lifecycle

    @property
    def nodes(self) -> List[str]:
        return list(self._nodes)

    @property
    def running_nodes(self) -> List[str]:
        return [n.name for n in self._nodes.values() if n.running]

    def up(self, timeout: float = 120.0) -> Cluster:
        """Network, state, all nodes booted; returns when all are online and there is a DC."""
        if self._started:
            raise HarnessError("cluster is up already")
        self._started = True
        start = time.monotonic()
        try:
            if self._own_network:
                self.network.up()
            self.root.mkdir(parents=True, exist_ok=True)
            if self.fencing:
                self._install_switch()
            seed = self._seed_cib()
            for node in self._nodes.values():
                self.network.add_node(node.name)
                self._prepare(node, seed)
            self._boot_nodes(list(self._nodes.values()))
            self.wait_ready(timeout)
        except BaseException as exc:
            # the logs go with the state: keep what explains the failure in the exception
            diagnostics = self._diagnostics() if isinstance(exc, Exception) else ""
            try:
                self.down()
            except Exception as teardown:
                log.error("teardown after a failed up() was incomplete: %s", teardown)
            if diagnostics:
                raise HarnessError(f"cluster did not come up: {exc}\n{diagnostics}") from exc
            raise
        self.timings["up"] = time.monotonic() - start
        log.info("cluster of %d node(s) up in %.1fs", len(self._nodes), self.timings["up"])
        return self

    def boot(self, node: str, *, wait: bool = True, timeout: float = 120.0) -> float:
        """Boot a node that was shut down or crashed; wait until it has rejoined."""
        n = self._node(node)
        if n.running:
            raise HarnessError(f"{node} is running")
        start = time.monotonic()
        self._boot_nodes([n])
        if wait:
            self.wait_ready(timeout)
        elapsed = self.timings[f"boot {node}"] = time.monotonic() - start
        return elapsed

    def shutdown(self, node: str, timeout: float = 120.0) -> float:
        """Clean shutdown: pacemakerd (which stops or hands over the resources) first."""
        n = self._running(node)
        start = time.monotonic()
        self._stop_daemon([n], "pacemakerd", timeout)
        self._stop_daemon([n], "corosync", 60.0)
        self._stop_inits([n], signal.SIGTERM)
        return time.monotonic() - start

    def crash(self, node: str) -> float:
        """Power cut: SIGKILL of the node's PID 1, the kernel kills everything else in it."""
        n = self._running(node)
        start = time.monotonic()
        self._stop_inits([n], signal.SIGKILL)
        return time.monotonic() - start

    def _fence_off(self, node: str) -> None:
        """What the power switch does for a fence device's off: the same power cut."""
        n = self._node(node)
        if n.running:
            log.warning("fencing %s: its power is cut", node)
        self._stop_inits([n], signal.SIGKILL)

    def fenced_since(self, node: str, since: float) -> Optional[float]:
        """When (monotonic) the cluster's fence device last powered node off after since."""
        if self.switch is None:
            raise HarnessError("this cluster runs without fencing")
        request = self.switch.fenced_since(node, since)
        return None if request is None else request.at

    def fence_history(self, node: str, via: Optional[str] = None) -> str:
        """What Pacemaker's fencer says it did to node (stonith_admin --history)."""
        return self.on(self._via(via), "stonith_admin", "--history", node, check=False).stdout

    def down(self, *, graceful: bool = True, keep_state: Optional[bool] = None) -> None:
        """Stop everything, delete the namespaces, and (unless kept) the state.

        graceful=False skips the clean pacemaker/corosync shutdown (power cut of all
        nodes).  Raises HarnessError afterwards if anything was left behind.
        """
        if not self._started:
            return
        start = time.monotonic()
        running = [n for n in self._nodes.values() if n.running]
        problems: List[str] = []
        steps: List[Callable[[], None]] = []
        if graceful:
            # all nodes at once: one node alone would first move its resources over
            steps.append(lambda: self._stop_daemon(running, "pacemakerd", 120.0))
            steps.append(lambda: self._stop_daemon(running, "corosync", 60.0))
        steps.append(lambda: self._stop_inits(running, signal.SIGTERM))
        for step in steps:
            try:
                step()
            except Exception as exc:  # carry on: the rest of the cleanup matters more
                problems.append(f"{type(exc).__name__}: {exc}")
        if self.switch is not None:
            self.switch.stop()
            self.switch = None
        for node in self._nodes:
            problems += self.network.remove(node_ns(node))
        if self._own_network:
            problems += self.network.down()
        leftovers = self.leftover_processes()
        if leftovers:
            problems.append(f"processes left: {_describe(leftovers)}")
        keep = self.keep_state if keep_state is None else keep_state
        if not keep:
            self._remove_state()
        self._started = False
        self.timings["down"] = time.monotonic() - start
        log.info("cluster down in %.1fs", self.timings["down"])
        if problems:
            raise HarnessError("cluster teardown left things behind:\n" + "\n".join(problems))

    def __enter__(self) -> Cluster:
        return self.up()

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # --------------------------------------------------------------------- running things

    def on(
        self,
        node: str,
        *argv: str,
        check: bool = True,
        timeout: float = 60.0,
        input: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a node, as root with a node's environment (cwd /)."""
        n = self._running(node)
        return run(
            [*self._nsenter(n), *argv],
            check=check,
            timeout=timeout,
            input=input,
            env={**NODE_ENV, **(env or {})},
        )

    def spawn_on(self, node: str, *argv: str, output: Path) -> subprocess.Popen[bytes]:
        """Start a long-running command inside a node (as an operator's `cmd &` there), its
        output appended to output; end it with end_spawned (its process group, ours only)."""
        n = self._running(node)
        with open(output, "ab") as sink:
            return subprocess.Popen(
                [*self._nsenter(n), *argv], stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=NODE_ENV, start_new_session=True,
            )  # fmt: skip

    @staticmethod
    def end_spawned(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL to what spawn_on started (its whole process group), and reap it."""
        _kill_group(proc)
        proc.wait(timeout=30)

    def node_dir(self, node: str) -> Path:
        """The node's state and logs (log-pacemaker/pacemaker.log, corosync.out, ...)."""
        return self._node(node).dir

    def init_pid(self, node: str) -> int:
        return self._running(node).init_pid

    def daemon_pid(self, node: str, name: str) -> int:
        """PID (seen from here) of "corosync" or "pacemakerd" on a node."""
        return self._running(node).daemons[name].pid

    # --------------------------------------------------------------------- state queries

    def crm_mon_xml(self, via: Optional[str] = None) -> ET.ElementTree:
        out = self.on(self._via(via), "crm_mon", "-1", "--output-as=xml", timeout=30).stdout
        return ET.ElementTree(ET.fromstring(out))

    def dc(self, via: Optional[str] = None) -> Optional[str]:
        """Name of the DC as seen by via, None if there is none."""
        return _dc(self.crm_mon_xml(via))

    def online_nodes(self, via: Optional[str] = None) -> List[str]:
        return _online(self.crm_mon_xml(via))

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until every running node sees all running nodes online and the same DC.

        (crm_mon answers as soon as the CIB does, well before there is a DC.)
        """
        start = time.monotonic()
        wait_for(self._ready, timeout, f"nodes {self.running_nodes} online with a DC")
        return time.monotonic() - start

    def settle(self, timeout: float = 120.0, via: Optional[str] = None) -> float:
        """Wait until the DC has nothing left to do (crm_resource --wait).

        Needed e.g. right after a crashed node rejoined: until its join is complete its
        pre-crash status still shows resources active on it.
        """
        start = time.monotonic()
        self.on(self._via(via), "crm_resource", "--wait", f"--timeout={int(timeout)}s", timeout=timeout + 30)
        return time.monotonic() - start

    def resource_nodes(self, rsc: str, via: Optional[str] = None) -> List[str]:
        """Nodes where rsc (a primitive, group, clone or bundle) is active, sorted."""
        return _resource_nodes(self.crm_mon_xml(via), rsc)

    def resource_role(self, rsc: str, via: Optional[str] = None) -> Optional[str]:
        """Role of rsc ("Started", "Stopped", ...); None if unknown.

        For a group or clone: the role shared by all its primitives, or the distinct
        roles joined by "," if they differ.
        """
        roles = sorted({r.get("role", "") for r in _primitives(self.crm_mon_xml(via), rsc)})
        return ",".join(roles) if roles else None

    def fail_count(self, rsc: str, node: str, via: Optional[str] = None) -> int:
        """Fail count of rsc on node (PCMK_INFINITY for INFINITY)."""
        out = self.on(
            self._via(via), "crm_failcount", "--query", "-r", rsc, "-N", node, "-q", check=False, timeout=30
        ).stdout.strip()
        if out.upper() in ("INFINITY", "+INFINITY"):
            return PCMK_INFINITY
        return int(out) if out.lstrip("-").isdigit() else 0

    def wait_resource(
        self,
        rsc: str,
        nodes: Optional[Sequence[str]] = None,
        timeout: float = 60.0,
        via: Optional[str] = None,
    ) -> float:
        """Wait until rsc is active exactly on `nodes` (any node if None).

        A group counts only once all its members are active.
        """
        want = sorted(nodes) if nodes is not None else None

        def placed() -> bool:
            tree = self._try_crm_mon(via)
            if tree is None or not _complete(tree, rsc):
                return False
            where = _resource_nodes(tree, rsc)
            return where == want if want is not None else bool(where)

        start = time.monotonic()
        wait_for(placed, timeout, f"{rsc} active on {want or 'some node'}")
        return time.monotonic() - start

    def leftover_processes(self) -> List[int]:
        """Live processes in any namespace this cluster created, or not yet reaped by us."""
        # the shared namespaces count only if they are ours: a services harness that lent
        # us its network has its own processes in cocf-svc
        mine = {node_ns(node) for node in self._nodes}
        netns = {f"net:[{ino}]" for ns, ino in self.network.inodes.items() if self._own_network or ns in mine}
        found = {
            pid
            for pid in psutil.pids()
            if pid != os.getpid() and _in_namespaces(pid, netns, self._pidns) and pid_alive(pid)
        }
        for n in self._nodes.values():
            popens = [n.unshare, *(d.nsenter for d in n.daemons.values())]
            found.update(p.pid for p in popens if p is not None and p.poll() is None)
        return sorted(found)

    # --------------------------------------------------------------------- internals: boot

    def _node(self, node: str) -> _Node:
        try:
            return self._nodes[node]
        except KeyError:
            raise HarnessError(f"no node {node!r} in this cluster ({self.nodes})") from None

    def _running(self, node: str) -> _Node:
        n = self._node(node)
        if not n.running:
            raise HarnessError(f"{node} is not running")
        return n

    def _via(self, via: Optional[str]) -> str:
        if via is not None:
            return via
        running = self.running_nodes
        if not running:
            raise HarnessError("no node is running")
        return running[0]

    @staticmethod
    def _nsenter(n: _Node) -> List[str]:
        return ["nsenter", "-t", str(n.init_pid), "-n", "-m", "-u", "-i", "-p", "--wdns=/", "--"]

    def _seed_cib(self) -> bytes:
        """The initial CIB of every node.

        With fencing, a fence_cocf device for every node (off for a reboot too: the switch
        cannot power a node on); without it, stonith-enabled=false, or no resource ever
        starts.  The default dc-deadtime (20 s) would make every cluster start take more
        than 20 s.
        """
        cib = ET.fromstring(run(["cibadmin", "--empty"], env=NODE_ENV).stdout)
        config = cib.find("configuration")
        crm_config = config.find("crm_config") if config is not None else None
        if config is None or crm_config is None:
            raise HarnessError("cibadmin --empty gave no configuration/crm_config")
        props = ET.SubElement(crm_config, "cluster_property_set", id="cib-bootstrap-options")
        for name, value in (
            ("stonith-enabled", "true" if self.fencing else "false"),
            ("dc-deadtime", self.dc_deadtime),
            ("cluster-recheck-interval", self.recheck_interval),
        ):
            ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
        meta = ET.SubElement(ET.SubElement(config, "rsc_defaults"), "meta_attributes", id="rsc-options")
        ET.SubElement(
            meta,
            "nvpair",
            id="rsc-options-resource-stickiness",
            name="resource-stickiness",
            value=str(self.stickiness),
        )
        if self.fencing:
            self._seed_fence_device(config)
        return ET.tostring(cib)

    def _seed_fence_device(self, config: ET.Element) -> None:
        resources = config.find("resources")
        if resources is None:
            raise HarnessError("cibadmin --empty gave no configuration/resources")
        device = ET.SubElement(
            resources, "primitive", {"id": DEVICE_ID, "class": "stonith", "type": AGENT_NAME}
        )
        attrs_id = f"{DEVICE_ID}-instance_attributes"
        attrs = ET.SubElement(device, "instance_attributes", id=attrs_id)
        for name, value in (("pcmk_host_list", " ".join(self._nodes)), ("pcmk_reboot_action", "off")):
            ET.SubElement(attrs, "nvpair", id=f"{attrs_id}-{name}", name=name, value=value)
        ops = ET.SubElement(device, "operations")
        ET.SubElement(ops, "op", id=f"{DEVICE_ID}-monitor-interval-60s", name="monitor", interval="60s")

    def _corosync_conf(self) -> str:
        nodes = "".join(
            f"    node {{\n        name: {name}\n        nodeid: {node_index(name)}\n"
            f"        ring0_addr: {node_ip(name)}\n    }}\n"
            for name in self._nodes
        )
        two_node = "    two_node: 1\n" if len(self._nodes) == 2 else ""
        return (
            "totem {\n"
            "    version: 2\n"
            f"    cluster_name: {self.cluster_name}\n"
            "    transport: knet\n"
            "    # no crypto, so no authkey: the link exists only between our namespaces\n"
            "    crypto_cipher: none\n"
            "    crypto_hash: none\n"
            "    # notice a lost node within ~1 s instead of 3 s\n"
            f"    token: {self.token_ms}\n"
            "}\n"
            f"nodelist {{\n{nodes}}}\n"
            "quorum {\n"
            "    provider: corosync_votequorum\n"
            f"{two_node}"
            "}\n"
            "logging {\n"
            "    to_stderr: no\n"
            "    to_syslog: no\n"
            "    to_logfile: yes\n"
            "    logfile: /var/log/corosync/corosync.log\n"
            "    timestamp: on\n"
            "}\n"
        )

    def _hosts(self) -> str:
        # crmsh pings node names (crm node standby X): they must resolve on every node
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{node_ip(name)} {name}" for name in self._nodes]
        lines += [f"{SVC_IP} {SVC_NS}", f"{CLIENT_IP} {CLIENT_NS}"]
        return "\n".join(lines) + "\n"

    def _install_switch(self) -> None:
        """fence_cocf where each node's fencer looks (an overlay over /usr/sbin, see _mount),
        and the switch it talks to."""
        sbin = self.root / "sbin"
        sbin.mkdir(exist_ok=True)
        shutil.copyfile(AGENT, sbin / AGENT_NAME)
        (sbin / AGENT_NAME).chmod(0o755)
        self.switch = PowerSwitch(
            self.root / "power",
            self.nodes,
            is_on=lambda node: self._node(node).running,
            power_off=self._fence_off,
        ).start()

    def _prepare(self, n: _Node, seed_cib: bytes) -> None:
        """The node's persistent "disk": survives crashes, like a real one."""
        if n.dir.exists():
            shutil.rmtree(n.dir)
        d = n.dir
        for sub in ("etc-corosync", "var-lib-corosync", "log-corosync", "tmp"):
            (d / sub).mkdir(parents=True)
        for sub in ("cib", "pengine", "blackbox", "cores"):
            _mkdir_owned(d / "var-lib-pacemaker" / sub, 0o750)
        _mkdir_owned(d / "var-lib-pacemaker", 0o755)
        _mkdir_owned(d / "log-pacemaker" / "bundles", 0o770)
        _mkdir_owned(d / "log-pacemaker", 0o770)
        (d / "tmp").chmod(0o1777)
        (d / "etc-corosync" / "corosync.conf").write_text(self._corosync_conf())
        (d / "hosts").write_text(self._hosts())
        cib = d / "var-lib-pacemaker" / "cib" / "cib.xml"
        cib.write_bytes(seed_cib)
        cib.chmod(0o600)
        shutil.chown(cib, "hacluster", "haclient")

    def _boot_nodes(self, nodes: List[_Node]) -> None:
        """Init, mounts and corosync on every node first, then pacemakerd on every node:
        pacemaker then sees the whole membership at once and a short dc-deadtime is safe."""
        for n in nodes:
            self._start_init(n)
            self._mount(n)
            self.on(n.name, "corosync", "-t")  # config check with a readable error
            self._start_daemon(n, "corosync", ["corosync", "-f"], NODE_ENV)
        for n in nodes:
            wait_for(lambda n=n: self._corosync_up(n), 30, f"corosync on {n.name}")
        for n in nodes:
            self._start_daemon(n, "pacemakerd", ["pacemakerd"], PACEMAKER_ENV)

    def _start_init(self, n: _Node) -> None:
        with self._power:  # not while the power switch cuts it
            self._start_init_unlocked(n)

    def _start_init_unlocked(self, n: _Node) -> None:
        # `ip netns exec` puts us in the node's network namespace (and mounts its /sys),
        # unshare --fork makes the init PID 1 of new PID/mount/UTS/IPC namespaces.
        # (from a file rather than -c: `ps` on the node then shows a readable PID 1)
        script = n.dir / "cocf-init.py"
        script.write_text(_INIT_CODE)
        argv = [
            "ip",
            "netns",
            "exec",
            node_ns(n.name),
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            _INIT_PYTHON,
            str(script),
        ]
        log_path = n.dir / "init.log"
        with log_path.open("ab") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=NODE_ENV,
                start_new_session=True,
            )
        n.unshare = proc
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if readable else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            if proc.poll() is None:
                _kill_group(proc)  # init's process group: ip/unshare, the init itself
                proc.wait()
            raise HarnessError(f"init of {n.name} did not start:\n{_tail(log_path)}")
        n.init_pid = _first_descendant_in_new_pidns(proc.pid, 5, f"init of {n.name}")
        self._pidns.add(os.readlink(f"/proc/{n.init_pid}/ns/pid"))

    def _mount(self, n: _Node) -> None:
        d = n.dir
        binds = [
            ("etc-corosync", "/etc/corosync"),
            ("var-lib-corosync", "/var/lib/corosync"),
            ("var-lib-pacemaker", "/var/lib/pacemaker"),
            ("log-corosync", "/var/log/corosync"),
            ("log-pacemaker", "/var/log/pacemaker"),
            ("hosts", "/etc/hosts"),
        ]
        steps = [["hostname", n.name]]
        steps += [["mount", "--bind", str(d / src), dst] for src, dst in binds]
        steps += [
            ["mount", "-t", "tmpfs", "-o", "mode=1777,size=256m", "shm", "/dev/shm"],
            # a fresh /run on every boot, with what the packages' tmpfiles.d would create
            ["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "run", "/run"],
            ["mkdir", "-m", "1777", "/run/lock"],
            ["mkdir", "-m", "1755", "/run/resource-agents"],  # HA_RSCTMP
            ["install", "-d", "-o", "hacluster", "-g", "haclient", "-m", "0750", "/run/crm"],
            ["ln", "-s", "/dev/shm", "/run/shm"],
        ]
        if self.switch is not None:
            # the fence agent in /usr/sbin for this node alone (a read-only overlay: the host's
            # /usr/sbin stays as it is), and the switch's socket in its /run
            lower = f"{self.root / 'sbin'}:/usr/sbin"
            steps += [
                ["mount", "-t", "overlay", "cocf-sbin", "-o", f"lowerdir={lower}", "/usr/sbin"],
                ["mkdir", "-m", "0700", NODE_SOCKET_DIR],
                ["mount", "--bind", str(self.switch.directory), NODE_SOCKET_DIR],
            ]
        steps += [
            # last: the state root may itself be under /tmp
            ["mount", "--bind", str(d / "tmp"), "/tmp"],
        ]
        for argv in steps:
            self.on(n.name, *argv, timeout=30)

    def _start_daemon(self, n: _Node, name: str, argv: List[str], env: Dict[str, str]) -> None:
        with (n.dir / f"{name}.out").open("ab") as out:
            proc = subprocess.Popen(
                [*self._nsenter(n), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        pid = _first_descendant_in_new_pidns(proc.pid, 5, f"{name} on {n.name}")
        n.daemons[name] = _Daemon(proc, pid)

    def _corosync_up(self, n: _Node) -> bool:
        if n.daemons["corosync"].nsenter.poll() is not None:
            raise HarnessError(
                f"corosync on {n.name} exited:\n{_tail(n.dir / 'corosync.out')}\n"
                f"{_tail(n.dir / 'log-corosync' / 'corosync.log')}"
            )
        return self.on(n.name, "corosync-cfgtool", "-s", check=False, timeout=10).returncode == 0

    # --------------------------------------------------------------------- internals: stop

    def _stop_daemon(self, nodes: List[_Node], name: str, timeout: float) -> None:
        """SIGTERM the daemon on all nodes at once, then wait; SIGKILL what outlives timeout."""
        daemons = [(n, n.daemons[name]) for n in nodes if name in n.daemons]
        for _n, daemon in daemons:
            if daemon.nsenter.poll() is None:  # else its PID may be someone else's by now
                _signal(daemon.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for n, daemon in daemons:
            if not _wait_exit(daemon.nsenter, max(0.0, deadline - time.monotonic())):
                log.warning("%s on %s ignored SIGTERM for %gs: SIGKILL", name, n.name, timeout)
                if daemon.nsenter.poll() is None:
                    _signal(daemon.pid, signal.SIGKILL)
                daemon.nsenter.wait(10)
            del n.daemons[name]

    def _stop_inits(self, nodes: List[_Node], sig: signal.Signals) -> None:
        """End the nodes' PID namespaces, and wait until every process of them is reaped."""
        with self._power:  # the tests and the power switch may end one node at once
            self._stop_inits_unlocked(nodes, sig)

    def _stop_inits_unlocked(self, nodes: List[_Node], sig: signal.Signals) -> None:
        live = [n for n in nodes if n.running]
        for n in live:
            _signal(n.init_pid, sig)  # its parent unshare still runs, so the PID is still its
        for n in live:
            assert n.unshare is not None
            if not _wait_exit(n.unshare, 10):
                log.warning("init of %s ignored %s: SIGKILL", n.name, sig.name)
                _signal(n.init_pid, signal.SIGKILL)
                n.unshare.wait(10)
            # the daemons died with the namespace; their nsenter parents exit right after
            for daemon in n.daemons.values():
                daemon.nsenter.wait(10)
            n.daemons.clear()

    def _remove_state(self) -> None:
        for n in self._nodes.values():
            if n.dir.exists():
                shutil.rmtree(n.dir)

    # --------------------------------------------------------------------- internals: status

    def _diagnostics(self) -> str:
        parts = []
        for n in self._nodes.values():
            parts.append(f"--- {n.name} ({'running' if n.running else 'not running'})")
            for name in (
                "corosync.out",
                "pacemakerd.out",
                "log-corosync/corosync.log",
                "log-pacemaker/pacemaker.log",
            ):
                path = n.dir / name
                if path.is_file() and path.stat().st_size:
                    parts.append(f"{name}:\n{_tail(path, 15)}")
        return "\n".join(parts)

    def _try_crm_mon(self, via: Optional[str]) -> Optional[ET.ElementTree]:
        try:
            return self.crm_mon_xml(via)
        except (subprocess.SubprocessError, ET.ParseError, HarnessError):
            return None

    def _ready(self) -> bool:
        expected = self.running_nodes
        dcs = set()
        for viewer in expected:
            tree = self._try_crm_mon(viewer)
            if tree is None:
                return False
            dc = _dc(tree)
            if dc is None or not set(expected) <= set(_online(tree)):
                return False
            dcs.add(dc)
        return len(dcs) == 1


def _in_namespaces(pid: int, netns: Set[str], pidns: Set[str]) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") in netns or os.readlink(f"/proc/{pid}/ns/pid") in pidns
    except OSError:  # gone, or a zombie
        return False


def _mkdir_owned(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    shutil.chown(path, "hacluster", "haclient")


def _describe(pids: List[int]) -> str:
    names = []
    for pid in pids:
        try:
            cmd = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            cmd = "?"
        names.append(f"{pid} ({cmd.strip()[:80]})")
    return ", ".join(names)


# ----------------------------------------------------------------------------- crm_mon XML


def _dc(tree: ET.ElementTree) -> Optional[str]:
    current = tree.getroot().find("summary/current_dc")
    if current is None or current.get("present") != "true":
        return None
    return current.get("name")


def _online(tree: ET.ElementTree) -> List[str]:
    return sorted(
        node.get("name", "")
        for node in tree.getroot().iterfind("nodes/node")
        if node.get("online") == "true" and node.get("pending") != "true"
    )


def _collections(tree: ET.ElementTree, rsc: str) -> List[ET.Element]:
    resources = tree.getroot().find("resources")
    if resources is None:
        return []
    return [
        el
        for el in resources.iter()
        if el.get("id") == rsc and el.tag in ("resource", "group", "clone", "bundle")
    ]


def _primitives(tree: ET.ElementTree, rsc: str) -> List[ET.Element]:
    """The primitives (clone instances included) that make up rsc."""
    return [prim for el in _collections(tree, rsc) for prim in el.iter("resource")]


def _resource_nodes(tree: ET.ElementTree, rsc: str) -> List[str]:
    return sorted(
        {
            node.get("name", "")
            for prim in _primitives(tree, rsc)
            if prim.get("active") == "true"
            for node in prim.iterfind("node")
        }
    )


def _complete(tree: ET.ElementTree, rsc: str) -> bool:
    """A group is complete when all its members are active; anything else when it exists."""
    found = _collections(tree, rsc)
    groups = [el for el in found if el.tag == "group"]
    return bool(found) and all(r.get("active") == "true" for g in groups for r in g.iter("resource"))


def main(argv: Optional[List[str]] = None) -> int:
    """python -m lab.cluster.harness cleanup: end what a killed test run left behind."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["cleanup"])
    parser.parse_args(argv)
    busy = cleanup_stale(kill=True, shared=True)
    for ns in busy:
        print(f"{ns} still in use by: {_describe(netns_pids(ns))}")
    return 1 if busy else 0


if __name__ == "__main__":
    raise SystemExit(main())
