"""Scenarios of a cinder cluster: cinder-volume cloned on both nodes, each node serving the
backends under its own name, grouped by cinder.conf's cluster, its locks in the lab's etcd
(issue 15, point 4).  They run on a Deployment(volume_mode="active-active").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .harness import HarnessError, wait_for
from .scenario import AA_CLUSTER, MONITOR_INTERVAL_S, VOLUME_CLONE, Deployment, _size, _warnings

BACKENDS = ("fake1", "fake2")


@dataclass(frozen=True)
class Members:
    rows: Dict[str, str]  # os-services host@backend -> state
    clusters: Dict[str, Tuple[int, int]]  # cluster@backend -> (num_hosts, num_down_hosts)


def members(dep: Deployment) -> Members:
    """cinder-api's view of the cluster, through the VIP."""
    assert dep.stack is not None and dep._svc is not None
    rows = {host: state for host, (state, _) in dep.os_services("cinder-volume").items()}
    listed = dep._svc.submit(dep.stack.clusters).result()
    clusters = {c["name"]: (int(c["num_hosts"]), int(c["num_down_hosts"])) for c in listed}
    return Members(rows, clusters)


def whole(dep: Deployment, nodes: List[str]) -> Optional[Members]:
    """The members when every backend of nodes is up and each cluster counts them all up."""
    try:
        seen = members(dep)
    except Exception:  # cinder-api restarting, the VIP moving: asked again
        return None
    hosts = [f"{node}@{b}" for node in nodes for b in BACKENDS]
    names = [f"{AA_CLUSTER}@{b}" for b in BACKENDS]
    if all(seen.rows.get(h) == "up" for h in hosts) and all(
        seen.clusters.get(n, (0, 1))[0] >= len(nodes) and seen.clusters[n][1] == 0 for n in names
    ):
        return seen
    return None


def wait_whole(dep: Deployment, nodes: List[str], timeout: float = 90.0) -> Members:
    """Wait until every backend of nodes is up and each cluster counts them all up."""
    found: List[Members] = []

    def seen() -> bool:
        now = whole(dep, nodes)
        if now is not None:
            found.append(now)
        return now is not None

    wait_for(seen, timeout, f"the cinder cluster whole with {', '.join(nodes)}")
    return found[-1]


def volume_leaders(dep: Deployment) -> Dict[str, int]:
    """node -> the pid cinder-volume's agent recorded there (no entry between a stop and a start)."""
    found = {}
    for node in dep.c.running_nodes:
        try:
            pid_file = dep.pid_file(node, VOLUME_CLONE.agent)
        except HarnessError:  # none: stopped, not started yet
            continue
        out = dep.c.on(node, "cat", pid_file, check=False).stdout.split()
        if out:
            found[node] = int(out[0])
    return found


def refused_clone(dep: Deployment, drop: str, timeout: float = 60.0) -> Dict[str, str]:
    """A second cinder-volume clone whose cinder.conf lacks [DEFAULT] `drop` (cluster, say),
    created as an operator would: node -> the failed start's exit code and reason crm_mon
    shows.  The clone is deleted again; nothing of it ran."""
    assert dep.stack is not None
    stack = dep.stack
    conf = stack.cinder_conf.with_name("cinder-refused.conf")
    text = stack.cinder_conf.read_text()
    conf.write_text("\n".join(line for line in text.splitlines() if not line.startswith(f"{drop} =")) + "\n")
    os.chown(conf, 0, stack.service_user_ids()[1])  # it holds the service's password, as the original
    conf.chmod(0o640)
    rid = "cinder-volume-refused"
    binary = stack.cinder_bin(VOLUME_CLONE.agent)
    dep.say(f"$ pcs resource create {rid} ocf:openstack:cinder-volume config={conf} ... clone")
    dep.pcs("resource", "create", rid, "ocf:openstack:cinder-volume", f"config={conf}", f"binary={binary}",
            "op", "monitor", "interval=5s", "clone", "interleave=true")  # fmt: skip
    failed: Dict[str, str] = {}

    def refused_everywhere() -> bool:
        for failure in dep.c.crm_mon_xml().iter("failure"):
            if failure.get("op_key", "").startswith(f"{rid}_start"):
                failed[failure.get("node", "")] = f"{failure.get('exitcode')}: {failure.get('exitreason')}"
        return len(failed) == len(dep.c.running_nodes) or any(v.startswith("6:") for v in failed.values())

    try:
        wait_for(refused_everywhere, timeout, f"{rid}'s start refused")
        dep.say(f"crm_mon: {next(iter(failed.values()))}")
    finally:
        dep.pcs("resource", "delete", rid)
        dep.pcs("resource", "cleanup")
        dep.c.settle()
        conf.unlink()
    return failed


@dataclass(frozen=True)
class LockOutage:
    seconds: float
    warnings: Dict[str, List[str]]  # node -> the agent's warnings about the lock manager
    degraded: Dict[Tuple[str, str], str]  # (resource, node) -> the 190's exit reason
    operations_before: Dict[Tuple[str, str], str]
    operations_after: Dict[Tuple[str, str], str]
    leaders_before: Dict[str, int]
    leaders_after: Dict[str, int]
    cleared_s: float


def etcd_outage(dep: Deployment, seconds: float = 2 * MONITOR_INTERVAL_S + 2) -> LockOutage:
    """The lock manager down for two monitor intervals: degraded, nothing restarted."""
    assert dep.stack is not None and dep._svc is not None
    ops_before, leaders_before = dep.last_operations(), volume_leaders(dep)
    offsets = {n: _size(dep.agent_log(n)) for n in dep.c.running_nodes}
    dep.say("Stopping etcd, the cinder cluster's lock manager.")
    t0 = time.monotonic()
    dep.stack.stop_etcd()
    dep.say(f"Waiting {seconds:g} s: {seconds / MONITOR_INTERVAL_S:.1f} monitor intervals.")
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    degraded = {k: v for k, v in dep.degraded_listed().items() if "lock manager" in v}
    ops_after = dep.last_operations()  # before the cleanup below, which probes again
    dep.say(f"Degraded (190) by the lock manager: {sorted(degraded)}")
    dep.say("Starting etcd again.")
    dep._svc.submit(dep.stack.start_etcd).result()
    outage = dep.timings.record("aa_etcd_outage_s", time.monotonic() - t0, "etcd stopped")
    t1 = time.monotonic()
    wait_for(lambda: dep._quiet_since(offsets, "lock manager", 2 * MONITOR_INTERVAL_S),
             6 * MONITOR_INTERVAL_S + 10, "no monitor degraded by the lock manager")  # fmt: skip
    cleared = dep.timings.record(
        "aa_etcd_degraded_cleared_s", time.monotonic() - t1, "etcd back -> no monitor degraded, 2 intervals"
    )
    warnings = {n: _warnings(dep.agent_log(n), offsets[n], "lock manager") for n in dep.c.running_nodes}
    leaders_after = volume_leaders(dep)
    dep.forget_degraded()
    return LockOutage(outage, warnings, degraded, ops_before, ops_after, leaders_before, leaders_after,
                      cleared)  # fmt: skip


@dataclass(frozen=True)
class MemberKill:
    node: str  # where every cinder-volume process got SIGKILL
    other: str
    detected_s: float  # kill -> the monitor's failure recorded
    whole_s: float  # kill -> the cluster whole again (restarted there, counted up)
    other_leader_before: int
    other_leader_after: int


def kill_member_volume(dep: Deployment) -> MemberKill:
    """SIGKILL of one node's cinder-volume tree: Pacemaker restarts that node's instance only;
    the other node serves the cluster meanwhile."""
    node = dep.vip_node()  # the node the user's requests enter by
    other = dep.other_node(node)
    leaders = volume_leaders(dep)
    old = leaders[node]
    pids = dep.daemon_pids(node, VOLUME_CLONE.agent)
    dep.say(f"kill -9 {' '.join(map(str, pids))}: every cinder-volume process on {node} dies at once.")
    t0, wall = time.monotonic(), time.time()
    dep.c.on(node, "kill", "-9", *map(str, pids))
    wait_for(lambda: dep.c.fail_count(VOLUME_CLONE.agent, node) >= 1, 60, f"the failure on {node}")
    detected = dep.timings.record("aa_kill_detected_s", time.monotonic() - t0, "SIGKILL -> monitor failure")
    # Started again there: a new leader recorded (the pid file goes with the stop).
    wait_for(lambda: volume_leaders(dep).get(node, old) != old, 120, f"cinder-volume restarted on {node}")
    dep.c.wait_resource(VOLUME_CLONE.id, dep.c.nodes, timeout=120)
    # Whole again once the new processes report: a dead one's rows stay "up" for
    # service_down_time, so only a heartbeat after the kill counts.
    wait_for(lambda: _reported_since(dep, node, wall), 120, f"{node}'s backends reporting again")
    wait_whole(dep, dep.c.nodes)
    back = dep.timings.record("aa_kill_whole_s", time.monotonic() - t0, "SIGKILL -> its backends report")
    dep.c.settle()  # the start's result recorded: the next scenario compares operations
    dep.say(f"+{back:.1f} s: {node}'s cinder-volume restarted and reporting again; {other}'s untouched.")
    return MemberKill(node, other, detected, back, leaders[other], volume_leaders(dep)[other])


def _reported_since(dep: Deployment, node: str, since: float) -> bool:
    try:
        rows = dep.os_services("cinder-volume")
    except Exception:  # cinder-api busy: asked again
        return False
    hosts = [f"{node}@{b}" for b in BACKENDS]
    return all(h in rows and rows[h][0] == "up" and rows[h][1] > since for h in hosts)


@dataclass(frozen=True)
class MemberCrash:
    node: str  # the node whose power was cut
    survivor: str
    leader_before: int  # the survivor's cinder-volume
    leader_after: int
    operation_before: str  # the survivor's last start/stop of cinder-volume
    operation_after: str
    offline_s: float  # crash -> Pacemaker sees the node offline
    fenced_s: float  # crash -> the survivor had the node powered off (fencing done)
    counted_down_s: float  # crash -> cinder-api counts one member of each cluster down
    member_lost: Dict[Tuple[str, str], str]  # the survivor's degraded monitors meanwhile


def crash_member(dep: Deployment) -> MemberCrash:
    """Power cut of the node that does not hold the VIP: the survivor keeps serving the
    cluster without any action of Pacemaker's on its cinder-volume."""
    survivor = dep.vip_node()
    node = dep.other_node(survivor)
    key = (VOLUME_CLONE.agent, survivor)
    dep.c.settle()
    operation_before, leader_before = dep.last_operations()[key], volume_leaders(dep)[survivor]
    dep.say(f"Power cut of {node}; {survivor} holds the VIP and serves the cinder cluster alone.")
    t0 = time.monotonic()
    dep.c.crash(node)
    wait_for(lambda: node not in dep.c.online_nodes(via=survivor), 60, f"{node} offline")
    offline = dep.timings.record("aa_crash_offline_s", time.monotonic() - t0, f"crash -> {node} offline")
    fenced = dep.wait_fenced(node, t0, "aa_crash_fenced_s", via=survivor)

    def counted_down() -> bool:
        try:
            seen = members(dep)
        except Exception:
            return False
        return all(seen.clusters.get(f"{AA_CLUSTER}@{b}", (0, 0))[1] >= 1 for b in BACKENDS)

    wait_for(counted_down, 60, "cinder-api counting the lost member down")
    down = dep.timings.record(
        "aa_crash_counted_down_s", time.monotonic() - t0, "crash -> clusters/detail counts a member down"
    )
    lost: Dict[Tuple[str, str], str] = {}

    def reported() -> bool:
        lost.update({k: v for k, v in dep.degraded_listed().items() if "lost members" in v})
        return bool(lost)

    wait_for(reported, 3 * MONITOR_INTERVAL_S + 10, "the survivor's monitor reporting the lost member")
    dep.say(f"{survivor}'s monitor: {next(iter(lost.values()))}")
    leader_after, operation_after = volume_leaders(dep)[survivor], dep.last_operations()[key]
    dep.forget_degraded()
    return MemberCrash(node, survivor, leader_before, leader_after, operation_before, operation_after,
                       offline, fenced, down, dict(lost))  # fmt: skip


def force_delete(dep: Deployment, volumes: List[str], timeout: float = 60.0) -> Dict[str, str]:
    """The operator's remedy for a volume a dead member left in `deleting` (it took the
    request off the queue and died): `cinder force-delete` as admin, done by a live member.
    volume -> "deleted" or what it still is."""
    assert dep.stack is not None and dep._svc is not None
    stack = dep.stack
    for volume in volumes:
        answer = dep._svc.submit(
            lambda v=volume: stack.volumes_call("POST", f"/{v}/action", {"os-force_delete": {}})
        ).result()
        dep.say(f"$ cinder force-delete {volume}: HTTP {answer.status}")
    status: Dict[str, str] = {}

    def gone() -> bool:
        for volume in volumes:
            answer = dep._svc.submit(lambda v=volume: stack.volumes_call("GET", f"/{v}")).result()
            status[volume] = "deleted" if answer.status == 404 else answer.json()["volume"]["status"]
        return all(s == "deleted" for s in status.values())

    wait_for(gone, timeout, "the force-deleted volumes gone")
    return status
