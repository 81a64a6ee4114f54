"""The cluster harness itself, proven with stock agents: ocf:heartbeat:Dummy and IPaddr2.

Both CLIs are exercised: pcs (resource create/delete, node standby) and crmsh (configure
primitive, node online).  Measured times are printed (run with -s to see them).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Tuple

from lab.cluster.harness import (
    CLIENT_NS,
    NS_PREFIX,
    SVC_IP,
    VIP,
    Cluster,
    netns_list,
    node_ip,
    ns_exec,
    ping,
    wait_for,
)

if TYPE_CHECKING:
    from .conftest import ClusterPool

GROUP = "g1"
# A crash is noticed after the corosync token timeout (1 s) plus consensus (1.2 s); the
# recipe measured 2.3-3.4 s to the resource running on the survivor.
FAILOVER_BOUND = 30.0


def _report(what: str, seconds: float) -> None:
    print(f"\n[timing] {what}: {seconds:.2f}s")


# ----------------------------------------------------------------------------- one node


def test_one_node_cluster_forms(cluster1: Cluster) -> None:
    assert cluster1.nodes == ["node1"]
    assert cluster1.dc() == "node1"
    assert cluster1.online_nodes() == ["node1"]
    _report("1-node cluster formed (up)", cluster1.timings["up"])


def test_node_has_private_run_tmp_and_shares_usr_and_var_tmp(cluster1: Cluster) -> None:
    on = cluster1.on
    assert on("node1", "hostname").stdout.strip() == "node1"
    # HA_RSCTMP on the node's own /run tmpfs, with the mode resource-agents' tmpfiles.d gives
    assert on("node1", "stat", "-c", "%a", "/run/resource-agents").stdout.strip() == "1755"
    assert on("node1", "stat", "-f", "-c", "%T", "/run/resource-agents").stdout.strip() == "tmpfs"
    # the host's agents directory (where the tests install theirs)
    on("node1", "test", "-x", "/usr/lib/ocf/resource.d/heartbeat/Dummy")
    # the lab's fence agent where the fencer looks, on the node alone: the host's /usr/sbin is
    # untouched; the fencer has registered the device and its switch answers
    assert not Path("/usr/sbin/fence_cocf").exists()
    assert on("node1", "fence_cocf", "-o", "status", "-n", "node1").stdout.strip() == "Status: ON"
    assert "fence-cocf" in on("node1", "stonith_admin", "--list-registered").stdout
    # PID 1 is the harness's init, and only the node's own processes are visible
    assert "cocf-init.py" in on("node1", "cat", "/proc/1/cmdline").stdout
    assert str(os.getpid()) not in on("node1", "ps", "-eo", "pid=").stdout.split()
    # /var/tmp is shared both ways, /tmp is not
    with (
        tempfile.NamedTemporaryFile("w", dir="/var/tmp", prefix="cocf-") as shared,
        tempfile.NamedTemporaryFile("w", prefix="cocf-") as private,
    ):
        shared.write("from the host")
        shared.flush()
        assert on("node1", "cat", shared.name).stdout == "from the host"
        assert on("node1", "test", "-e", private.name, check=False).returncode != 0
    # the only IPv4 addresses of the node: loopback and its own
    addresses = on("node1", "ip", "-o", "-4", "addr", "show").stdout
    assert sorted(line.split()[3] for line in addresses.splitlines()) == ["10.213.0.1/24", "127.0.0.1/8"]


def test_one_node_dummy_started_via_pcs_and_crmsh(cluster1: Cluster) -> None:
    start = time.monotonic()
    cluster1.on(
        "node1", "pcs", "resource", "create", "d1", "ocf:heartbeat:Dummy", "op", "monitor", "interval=5s"
    )
    cluster1.wait_resource("d1", ["node1"])
    _report("1 node: pcs resource create Dummy -> Started", time.monotonic() - start)
    assert cluster1.resource_role("d1") == "Started"
    assert cluster1.fail_count("d1", "node1") == 0
    cluster1.on("node1", "test", "-e", "/run/resource-agents/Dummy-d1.state")

    cluster1.on(
        "node1", "crm", "configure", "primitive", "d2", "ocf:heartbeat:Dummy", "op", "monitor", "interval=5s"
    )
    cluster1.wait_resource("d2", ["node1"])
    assert cluster1.resource_role("d2") == "Started"

    for rsc in ("d1", "d2"):
        cluster1.on("node1", "pcs", "resource", "delete", rsc)
    wait_for(lambda: cluster1.resource_role("d1") is None, 60, "d1 deleted")


# ----------------------------------------------------------------------------- two nodes


def _other(cluster: Cluster, node: str) -> str:
    (other,) = [n for n in cluster.nodes if n != node]
    return other


def _ensure_vip_group(cluster: Cluster) -> Tuple[str, str]:
    """g1 = Dummy + IPaddr2 (the VIP), running; returns (its node, the other node)."""
    if cluster.resource_role(GROUP) is None:
        start = time.monotonic()
        cluster.on(
            "node1",
            "pcs",
            "resource",
            "create",
            "d1",
            "ocf:heartbeat:Dummy",
            "op",
            "monitor",
            "interval=5s",
            "--group",
            GROUP,
        )
        cluster.on(
            "node1",
            "pcs",
            "resource",
            "create",
            "vip",
            "ocf:heartbeat:IPaddr2",
            f"ip={VIP}",
            "cidr_netmask=24",
            "op",
            "monitor",
            "interval=5s",
            "--group",
            GROUP,
        )
        cluster.wait_resource(GROUP)
        _report("2 nodes: Dummy + IPaddr2 group created -> Started", time.monotonic() - start)
    cluster.settle()
    nodes = cluster.resource_nodes(GROUP)
    assert len(nodes) == 1, f"{GROUP} active on {nodes}"
    return nodes[0], _other(cluster, nodes[0])


def _vip_answers() -> bool:
    # a few tries: right after a move the client's neighbour entry may still be stale
    return any(ping() for _ in range(3))


def test_two_node_cluster_forms(cluster2: Cluster) -> None:
    assert cluster2.nodes == ["node1", "node2"]
    assert cluster2.online_nodes("node1") == cluster2.online_nodes("node2") == ["node1", "node2"]
    assert cluster2.dc("node1") == cluster2.dc("node2") is not None
    # the nodes, the services' and the client's namespaces share one link
    for node in cluster2.nodes:
        ns_exec(CLIENT_NS, "ping", "-c1", "-W1", node_ip(node))
        cluster2.on(node, "ping", "-c1", "-W1", SVC_IP)
    _report("2-node cluster formed (up)", cluster2.timings["up"])


def test_group_with_vip_runs_on_one_node(cluster2: Cluster) -> None:
    active, other = _ensure_vip_group(cluster2)
    assert cluster2.resource_role(GROUP) == "Started"
    assert _vip_answers()
    # the VIP is configured on the active node only
    assert f" {VIP}/24 " in cluster2.on(active, "ip", "-o", "-4", "addr", "show").stdout
    assert f" {VIP}/24 " not in cluster2.on(other, "ip", "-o", "-4", "addr", "show").stdout


def test_standby_moves_group_and_vip(cluster2: Cluster) -> None:
    active, other = _ensure_vip_group(cluster2)
    start = time.monotonic()
    cluster2.on(other, "pcs", "node", "standby", active)
    cluster2.wait_resource(GROUP, [other])
    _report(f"pcs node standby {active} -> {GROUP} on {other}", time.monotonic() - start)
    assert _vip_answers()

    cluster2.on(other, "crm", "node", "online", active)
    wait_for(lambda: _standby(cluster2, active) == "false", 30, f"{active} out of standby")
    cluster2.settle()
    assert cluster2.resource_nodes(GROUP) == [other], "resource-stickiness=100 keeps it"
    assert _vip_answers()


def _standby(cluster: Cluster, node: str) -> str:
    tree = cluster.crm_mon_xml()
    (entry,) = [n for n in tree.getroot().iterfind("nodes/node") if n.get("name") == node]
    return entry.get("standby", "")


def test_crash_fails_over_and_node_rejoins(cluster2: Cluster) -> None:
    active, survivor = _ensure_vip_group(cluster2)
    start = time.monotonic()
    cluster2.crash(active)
    cluster2.wait_resource(GROUP, [survivor], timeout=FAILOVER_BOUND, via=survivor)
    failover = time.monotonic() - start
    wait_for(ping, 10, "VIP answering on the survivor")
    _report(f"crash of {active} -> {GROUP} running on {survivor}", failover)
    _report(f"crash of {active} -> VIP answering again", time.monotonic() - start)
    assert failover < FAILOVER_BOUND
    # fencing on: the survivor had the lost node powered off before it took the group over
    fenced = cluster2.fenced_since(active, start)
    history = cluster2.fence_history(active, via=survivor)
    assert fenced is not None, history
    assert fenced - start <= failover  # no recovery before the fencing is done
    _report(f"crash of {active} -> fenced by {survivor}", fenced - start)
    assert f"of {active} successful: delegate={survivor}" in history, history
    cluster2.settle(via=survivor)

    rejoin = cluster2.boot(active)
    _report(f"{active} booted and rejoined", rejoin)
    settle = cluster2.settle()
    _report("crm_resource --wait after the rejoin", settle)
    assert cluster2.online_nodes(active) == ["node1", "node2"]
    assert cluster2.resource_nodes(GROUP) == [survivor]
    assert cluster2.fail_count("vip", survivor) == 0
    assert _vip_answers()


def test_shutdown_hands_group_over_and_node_boots(cluster2: Cluster) -> None:
    active, other = _ensure_vip_group(cluster2)
    took = cluster2.shutdown(active)
    _report(f"clean shutdown of {active}", took)
    cluster2.wait_resource(GROUP, [other], via=other)
    assert _vip_answers()
    cluster2.boot(active)
    cluster2.settle()
    assert cluster2.resource_nodes(GROUP) == [other]


# ----------------------------------------------------------------------------- teardown


def test_down_leaves_nothing(cluster_pool: ClusterPool, cluster2: Cluster) -> None:
    namespaces = list(cluster2.network.created)
    closed = cluster_pool.close()
    assert closed is cluster2
    _report("teardown of the 2-node cluster (down)", cluster2.timings["down"])
    remaining = [ns for ns in netns_list() if ns.startswith(NS_PREFIX)]
    assert not set(namespaces) & set(remaining), f"left: {remaining}"
    assert not [ns for ns in remaining if ns.startswith(f"{NS_PREFIX}node")]
    assert cluster2.leftover_processes() == []
    assert cluster2.running_nodes == []
    mounts: List[str] = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if any(f"/run/netns/{ns} " in line for ns in namespaces)
    ]
    assert mounts == []
    if not cluster_pool.keep:
        assert not Path(cluster2.root).exists()
