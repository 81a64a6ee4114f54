"""The cinder agents in a real two-node Pacemaker cluster, with real Keystone and RabbitMQ.

cinder-api and cinder-scheduler run as clones on both nodes, cinder-volume once, behind an
IPaddr2 VIP, configured with the pcs commands of `cinder-ocf cluster-config` (the OpenStack
HA guide's start order, Optional: a failed service restarts no other); the monitors'
credentials come from cinder.conf, so no
password is on any command line or in the CIB.  The scenarios run in order on one deployment
(see lab/cluster/scenario.py): everything started; a monitoring parameter reloaded without a restart
(OCF 1.1), another restarting; a SIGKILLed cinder-api restarted where it ran, on the other
node and on the VIP's; a SIGKILLed cinder-volume backend child replaced by its parent alone; a
frozen cinder-volume backend found through its heartbeat and restarted; standby of the VIP's
node while a client keeps calling; standby of cinder-volume's node; Keystone and RabbitMQ
outages that must restart nothing (degraded, 190, to this Pacemaker 2.1); a power cut of
cinder-volume's node; the cluster stopped with nothing left.  Every duration is printed and
written to benchmarks/cluster-results.json.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterator

import pytest

from lab.cluster.harness import VIP
from lab.cluster.scenario import (
    API,
    MONITOR_INTERVAL_S,
    SCHEDULER,
    VIP_RESOURCE,
    VOLUME,
    Deployment,
)
from lab.cluster.workload import KINDS, ClientView, Managed

from .conftest import deployed, watched_by_the_user, with_the_user

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "cluster-results.json"

# Bounds that fail the test only when something is really wrong, not when the machine is slow.
DETECT_BOUND_S = 3 * MONITOR_INTERVAL_S + 5  # a failed monitor, seen within ~one interval
RECOVER_BOUND_S = 90.0  # + stop and start of cinder-api on 2 cores
MOVE_BOUND_S = 60.0


def _report(what: str, seconds: float) -> None:
    print(f"\n[timing] {what}: {seconds:.2f}s")


# What the cloud user saw during each scenario (issue 13): test name -> its ClientView.
CLIENT_VIEWS: Dict[str, ClientView] = {}
# The volume made before each scenario, managed after it: test name -> Managed.
MANAGED: Dict[str, Managed] = {}


@pytest.fixture(scope="module")
def deployment(cluster_host: None) -> Iterator[Deployment]:
    with deployed("cluster") as dep, with_the_user(dep, RESULTS, CLIENT_VIEWS, __file__):
        yield dep


@pytest.fixture(autouse=True)
def client_window(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[None]:
    """What the cloud user saw during each scenario, and a volume made before it managed after."""
    with watched_by_the_user(request.node.name, deployment, CLIENT_VIEWS, MANAGED):
        yield


def test_everything_started_and_the_api_answers_everywhere(deployment: Deployment) -> None:
    cluster = deployment.c
    print("\n" + deployment.crm_mon())
    assert cluster.resource_role(API.id) == "Started"
    assert cluster.resource_nodes(API.id) == ["node1", "node2"]
    assert cluster.resource_nodes(SCHEDULER.id) == ["node1", "node2"]
    assert len(cluster.resource_nodes(VOLUME.id)) == 1
    assert cluster.resource_role(VIP_RESOURCE) == "Started"
    assert len(cluster.resource_nodes(VIP_RESOURCE)) == 1
    # Both schedulers and both backends report as the one shared service host.
    volumes = deployment.os_services("cinder-volume")
    assert {host: state for host, (state, _) in volumes.items()} == dict.fromkeys(
        deployment.volume_hosts(), "up"
    )
    schedulers = deployment.os_services("cinder-scheduler")
    assert [state for state, _ in schedulers.values()] == ["up"], schedulers
    answers = deployment.check_answers()
    assert answers == {"VIP": "300", "node1": "300", "node2": "300"}
    # the VIP is on one node only
    vip_node = deployment.vip_node()
    other = deployment.other_node(vip_node)
    assert f" {VIP}/24 " in cluster.on(vip_node, "ip", "-o", "-4", "addr", "show").stdout
    assert f" {VIP}/24 " not in cluster.on(other, "ip", "-o", "-4", "addr", "show").stdout
    # what the last test looks for once the cluster is down: parent + worker on each node
    assert len(deployment.our_processes()) >= 4, deployment.our_processes()
    # no password on the daemon's or Pacemaker's side: the CIB holds only paths
    cib = cluster.on("node1", "cibadmin", "--query", "--scope", "resources").stdout
    assert "password" not in cib
    for what in ("cluster_up_s", "services_up_s", "resources_started_s"):
        _report(deployment.timings.entries[what].what, deployment.timings.entries[what].seconds)


def test_a_monitoring_parameter_is_reloaded_and_another_restarts(deployment: Deployment) -> None:
    """Issue 12, point 2: a change of reloadable parameters only is applied by reload-agent,
    no process touched; a change of a non-reloadable one restarts the service."""
    for svc in (API, VOLUME):
        change = deployment.update_parameters(svc, check_timeout="7")
        _report(f"pcs resource update {svc.agent} check_timeout=7 -> settled", change.seconds)
        # Pacemaker records a reload as a start (its digest is the start's): the processes say.
        assert change.pids_after == change.pids_before, "reload-agent restarted the daemon"
        assert change.reloaded.keys() == change.pids_before.keys()
        assert all(change.reloaded.values()), f"no reload-agent in the agent's log: {change.reloaded}"
    # binary spelled another way (the same file): not reloadable, so a restart.
    binary = deployment.current_parameter(VOLUME, "binary")
    moved = binary.replace("/bin/", "/bin/./", 1)
    change = deployment.update_parameters(VOLUME, binary=moved)
    _report("pcs resource update cinder-volume binary=... -> restarted and settled", change.seconds)
    for node, before in change.pids_before.items():
        assert not set(before) & set(change.pids_after[node]), "binary changed, no restart"
    assert change.operations_after != change.operations_before, "no start recorded"
    assert all(op.startswith("start ") for op in change.operations_after.values()), change.operations_after
    assert not any(change.reloaded.values()), change.reloaded
    assert all(count == 0 for count in deployment.fail_counts().values()), deployment.crm_mon()


def test_sigkill_is_detected_and_restarted_on_the_same_node(deployment: Deployment) -> None:
    cluster = deployment.c
    node = deployment.other_node(deployment.vip_node())  # the VIP keeps serving meanwhile
    pid_file = deployment.pid_file(node)
    result = deployment.kill_and_recover(node)
    _report(f"SIGKILL of cinder-api on {node} -> monitor failure recorded", result.detected_s)
    _report(f"SIGKILL of cinder-api on {node} -> API answers again there", result.recovered_s)
    _report(f"SIGKILL of cinder-api on {node} -> clone Started on both nodes", result.running_s)
    _report("meanwhile, longest time the VIP answered no request", result.vip_gap.seconds)
    _report("meanwhile, slowest request through the VIP", result.vip_gap.slowest)

    assert len(result.pids) >= 2, "cinder-api's parent and its worker"
    assert result.detected_s < DETECT_BOUND_S
    assert result.recovered_s < RECOVER_BOUND_S
    assert result.fail_count == 1
    assert cluster.fail_count(API.agent, deployment.other_node(node)) == 0
    assert cluster.resource_nodes(API.id) == ["node1", "node2"]
    assert deployment.pid_file(node) == pid_file
    assert set(deployment.daemon_pids(node)).isdisjoint(result.pids), "a new cinder-api"
    assert deployment.check_answers() == {"VIP": "300", "node1": "300", "node2": "300"}
    mon = deployment.crm_mon()
    assert "not running" in mon, "crm_mon shows why it was restarted:\n" + mon
    # Issue 13, point 4: the orders are Optional, so the scheduler beside it and cinder-volume
    # (which need no local API) keep running, the same processes.
    assert result.neighbours_before.keys() >= {
        f"cinder-scheduler@{node}",
        f"cinder-volume@{deployment.volume_node()}",
    }
    assert result.neighbours_after == result.neighbours_before, "a neighbour was restarted"

    deployment.cleanup()
    assert all(count == 0 for count in deployment.fail_counts().values()), deployment.crm_mon()


def test_sigkill_of_cinder_api_on_the_vip_node_restarts_it_and_nothing_else(deployment: Deployment) -> None:
    node = deployment.vip_node()
    result = deployment.kill_and_recover(node)
    _report(f"SIGKILL of cinder-api on the VIP's node {node} -> API answers again there", result.recovered_s)
    _report("meanwhile, longest time the VIP answered no request", result.vip_gap.seconds)
    assert result.recovered_s < RECOVER_BOUND_S
    assert result.fail_count == 1
    assert deployment.check_answers() == {"VIP": "300", "node1": "300", "node2": "300"}
    assert result.neighbours_after == result.neighbours_before, "a neighbour was restarted"
    deployment.cleanup()


def test_a_killed_volume_backend_child_is_replaced_by_its_parent_alone(deployment: Deployment) -> None:
    result = deployment.kill_volume_backend()
    _report(f"SIGKILL of a cinder-volume backend child on {result.node} -> a new child", result.replaced_s)
    _report("SIGKILL of a backend child -> its os-services rows up again", result.up_s)
    assert result.new_pid != result.killed_pid
    # the service healed itself (oslo.service): no failure, no restart, the same parent
    assert result.fail_count == 0, deployment.crm_mon()
    assert result.leader_after == result.leader_before
    assert result.operations_after == result.operations_before


def test_a_frozen_volume_backend_is_found_by_its_heartbeat_and_restarted(deployment: Deployment) -> None:
    result = deployment.freeze_volume_backend()
    _report(
        f"SIGSTOP of a cinder-volume backend on {result.node} -> monitor failure recorded", result.detected_s
    )
    _report("SIGSTOP -> cinder-volume restarted and its os-services rows up", result.recovered_s)

    assert result.fail_count == 1
    assert "down in os-services" in result.reason, result.reason
    assert result.services == dict.fromkeys(deployment.volume_hosts(), "up")
    assert deployment.volume_node() == result.node, "restarted where it ran (no migration-threshold)"
    assert result.frozen_pid not in deployment.daemon_pids(result.node, VOLUME.agent)
    deployment.cleanup(VOLUME.agent)
    assert all(count == 0 for count in deployment.fail_counts().values()), deployment.crm_mon()


def test_standby_moves_the_vip_while_a_client_keeps_calling(deployment: Deployment) -> None:
    cluster = deployment.c
    result = deployment.standby_move()
    _report(f"pcs node standby {result.from_node} -> VIP on {result.to_node}", result.moved_s)
    _report("VIP unreachable window (no request answered)", result.gap.seconds)
    _report("slowest request through the VIP", result.gap.slowest)
    _report(f"pcs node unstandby {result.from_node} -> cinder-api on both nodes", result.rejoined_s)

    assert result.to_node != result.from_node
    assert result.moved_s < MOVE_BOUND_S
    assert result.gap.seconds < MOVE_BOUND_S
    assert result.vip_after_unstandby == [result.to_node], "resource stickiness keeps the VIP"
    assert cluster.resource_nodes(API.id) == ["node1", "node2"]
    assert all(count == 0 for count in deployment.fail_counts().values()), deployment.crm_mon()
    assert deployment.check_answers() == {"VIP": "300", "node1": "300", "node2": "300"}


def test_standby_moves_cinder_volume_and_it_stays_the_same_service(deployment: Deployment) -> None:
    cluster = deployment.c
    result = deployment.standby_volume_node()
    _report(
        f"pcs node standby {result.from_node} -> cinder-volume Started on {result.to_node}", result.moved_s
    )
    _report("standby -> cinder-volume's os-services rows up again", result.up_s)

    assert result.moved_s < MOVE_BOUND_S
    assert result.services == dict.fromkeys(deployment.volume_hosts(), "up")
    assert deployment.volume_node() == result.to_node, "resource stickiness keeps it after unstandby"
    assert cluster.resource_nodes(SCHEDULER.id) == ["node1", "node2"]
    assert all(count == 0 for count in deployment.fail_counts().values()), deployment.crm_mon()


def test_keystone_outage_restarts_nothing_and_the_log_says_why(deployment: Deployment) -> None:
    result = deployment.keystone_outage()
    _report("Keystone stopped", result.seconds)
    _report("Keystone back -> every monitor has a new token", result.token_renewed_s)

    for node, files in result.tokens_deleted.items():
        assert files, f"{node} had no cached token: the monitor never reached Keystone"
    assert result.api_status == {"node1": "300", "node2": "300"}
    assert result.fail_counts_after == result.fail_counts_before
    # crm_mon's "Failed Resource Actions" (with the exit reasons) say which, should one fail.
    assert all(count == 0 for count in result.fail_counts_after.values()), deployment.crm_mon()
    assert result.operations_after == result.operations_before, "a resource was started or stopped"
    for node, lines in result.warnings.items():
        assert lines, f"no warning about Keystone in {deployment.agent_log(node)}"
        print(f"\n[{node}] {lines[-1]}")
    assert deployment.check_answers()["VIP"] == "300"
    # OCF 1.1 (issue 12): every cinder resource answered degraded, the reason for crm_mon.
    cluster = deployment.c
    everywhere = {(svc.agent, node) for svc in deployment.services for node in cluster.resource_nodes(svc.id)}
    assert set(result.degraded) == everywhere, result.degraded
    assert all("Keystone" in reason for reason in result.degraded.values()), result.degraded
    _report("Keystone back -> no monitor degraded", result.degraded_cleared_s)
    # The degraded results stay listed until a cleanup (which the scenario then ran).
    assert result.still_listed, "crm_mon listed no degraded monitor under Failed Resource Actions"
    print(f"\n[crm_mon] {result.still_listed[0]}")


def test_rabbitmq_outage_restarts_nothing_and_the_log_says_why(deployment: Deployment) -> None:
    result = deployment.rabbitmq_outage()
    _report("RabbitMQ stopped", result.seconds)
    _report(
        "RabbitMQ back -> no monitor warns about it",
        deployment.timings.entries["rabbitmq_reconnected_s"].seconds,
    )

    assert result.api_status == {"node1": "300", "node2": "300"}
    assert result.fail_counts_after == result.fail_counts_before
    # crm_mon's "Failed Resource Actions" (with the exit reasons) say which, should one fail.
    assert all(count == 0 for count in result.fail_counts_after.values()), deployment.crm_mon()
    assert result.operations_after == result.operations_before, "a resource was started or stopped"
    said = [line for lines in result.warnings.values() for line in lines]
    assert any("an outage of a dependency" in line for line in said), said[-5:]
    print(f"\n[log] {said[-1]}")
    # OCF 1.1: the services of the broker answered degraded; cinder-api needs no broker.
    cluster = deployment.c
    rpc = {(svc.agent, node) for svc in (SCHEDULER, VOLUME) for node in cluster.resource_nodes(svc.id)}
    assert set(result.degraded) == rpc, result.degraded
    assert all("an outage of a dependency" in reason for reason in result.degraded.values()), result.degraded


def test_a_copy_started_by_hand_on_the_other_node_ends_with_one_cinder_volume(deployment: Deployment) -> None:
    """Issue 11, 5a: the cluster notices a second server of the host and ends with one."""
    result = deployment.stray_on_the_other_node()
    _report("cinder-volume by hand on the other node -> a monitor failure recorded", result.seen_s)
    _report("cinder-volume by hand on the other node -> one cinder-volume, the resource's", result.settled_s)
    assert "a second server of the same service host runs elsewhere" in result.reason, result.reason
    assert result.servers == 1
    rows = deployment.os_services("cinder-volume")
    assert {host: rows[host][0] for host in deployment.volume_hosts()} == dict.fromkeys(
        deployment.volume_hosts(), "up"
    )


def test_a_copy_outside_the_cluster_makes_the_move_refuse_until_it_is_gone(deployment: Deployment) -> None:
    """Issue 11, 5b: the start on the standby's target refuses while the copy reports."""
    result = deployment.stray_outside_during_standby()
    _report("standby beside a cinder-volume outside the cluster -> start refused", result.seen_s)
    _report("the copy gone, pcs resource cleanup -> cinder-volume up again from the target", result.settled_s)
    assert "is served by another cinder-volume" in result.reason, result.reason
    assert result.servers == 1


def test_a_power_cut_of_cinder_volume_node_moves_it_to_the_survivor(deployment: Deployment) -> None:
    result = deployment.crash_volume_node()
    assert result.vip_gap is not None and result.fenced_s is not None
    _report(f"power cut of {result.from_node} -> fenced by {result.to_node}", result.fenced_s)
    _report(f"power cut of {result.from_node} -> cinder-volume Started on {result.to_node}", result.moved_s)
    _report("power cut -> cinder-volume's os-services rows up from the survivor", result.up_s)
    _report("meanwhile, longest time the VIP answered no request", result.vip_gap.seconds)

    assert result.moved_s < MOVE_BOUND_S
    assert result.fenced_s <= result.moved_s  # fencing on: no start on the survivor before it
    assert result.services == dict.fromkeys(deployment.volume_hosts(), "up")
    assert deployment.c.running_nodes == [result.to_node]
    assert deployment.c.resource_nodes(API.id) == [result.to_node]
    assert deployment.check_answers()["VIP"] == "300"


def test_the_cloud_user_worked_through_every_scenario(deployment: Deployment) -> None:
    """Issue 13, point 1: python-cinderclient, as a tenant, through the VIP, all along."""
    assert deployment.client is not None
    client = deployment.client
    finals = deployment.stop_client()
    requests = client.snapshot()
    assert "Traceback" not in client.stderr, client.stderr
    for kind in KINDS:
        assert any(r.kind == kind and r.ok for r in requests), f"no {kind} succeeded: {requests[-20:]}"
    idle = [name for name, view in CLIENT_VIEWS.items() if sum(view.tried.values()) == 0]
    assert CLIENT_VIEWS and idle == [], f"no request during {idle}"
    assert finals, "the user made no volume"
    ended = Counter(r.result for r in finals)
    print(f"\n[client] {len(finals)} volumes made, how they ended: {dict(ended)}")
    # Issue 13, pt 3: no volume in error or stuck that cinder's design does not account for,
    # counted in the window where its wait began (the waits that gave up late included).
    for view in CLIENT_VIEWS.values():
        view.recount_unsettled(requests)
    unexplained = {name: view.unexplained(VOLUME.agent) for name, view in CLIENT_VIEWS.items()}
    unexplained = {name: volumes for name, volumes in unexplained.items() if volumes}
    for name in unexplained:
        view = CLIENT_VIEWS[name]
        # A wait begun in the window gives up to 30 s after it (the client's settle_s), maybe
        # hurt by the next scenario's fault: the logs of that time are read too.
        found = deployment.post_mortem(view.began_at, view.began_at + view.seconds + 60)
        print(f"\n[post-mortem] {name}:\n{found}")
    assert unexplained == {}, {name: CLIENT_VIEWS[name].line() for name in unexplained}


def test_every_volume_made_before_a_fault_is_managed_after_it(deployment: Deployment) -> None:
    """Issue 13, pt 3: after every scenario so far, the volume the user made before it was
    extended and deleted, by the same service host."""
    for name, managed in MANAGED.items():
        print(f"\n[held] {name}: extended {managed.extended_s} s after the first try, {managed}")
    assert MANAGED, "no volume was held"
    lost = {name: managed for name, managed in MANAGED.items() if not managed.ok}
    assert lost == {}, lost


def test_stopping_the_cluster_leaves_no_cinder_process(deployment: Deployment) -> None:
    result = deployment.stop_cluster()
    _report("cluster stopped (pacemaker stops cinder-api, then itself, then corosync)", result.seconds)
    assert result.leftovers == []
    assert deployment.our_processes() == []
