"""The crm shell's form of the configuration on a one-node cluster: what `cinder-ocf
cluster-config --format crm` prints, loaded with `crm configure load update`, starts every
service (p_* primitives, cl_* clones, as the HA guide's crm examples name them), and stopping
the cluster leaves nothing behind.

Then the same fault under both forms of the constraints, on the same node, with a cloud
user's client calling through the VIP all along (issue 13, pt 4): cinder-api SIGKILLed under
cluster-config's default (Optional orders, no colocation between the services), then again
once `--constraints guide` (the HA guide's Mandatory orders and colocations) is loaded.  What
the user saw under each is written to benchmarks/cluster-constraints-results.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from cinder_ocf.clusterconfig import DEEP_MONITORED, GUIDE
from lab.cluster.harness import VIP, HarnessTimeout, wait_for
from lab.cluster.scenario import API, SERVICES, Deployment, KillResult, api_url, client_get
from lab.cluster.workload import ClientView, Managed

from .conftest import deployed, watched_by_the_user, with_the_user

DEEP_INTERVAL_S = 8  # the depth-20 monitors, beside the depth-0 ones every 5 s
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "cluster-constraints-results.json"
NODE = "node1"

# The SIGKILL of cinder-api under each form: form -> the services restarted with it.
RESTARTED: Dict[str, List[str]] = {}
CLIENT_VIEWS: Dict[str, ClientView] = {}  # test name -> what the user saw
MANAGED: Dict[str, Managed] = {}


@pytest.fixture(scope="module")
def deployment(cluster_host: None) -> Iterator[Deployment]:
    with (
        deployed("crm", nodes=1, tool="crm", deep_monitor_interval_s=DEEP_INTERVAL_S) as dep,
        with_the_user(dep, RESULTS, CLIENT_VIEWS, __file__, restarted=RESTARTED),
    ):
        yield dep


@pytest.fixture
def client_window(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[None]:
    with watched_by_the_user(request.node.name, deployment, CLIENT_VIEWS, MANAGED):
        yield


def test_the_crm_configuration_starts_every_service(deployment: Deployment) -> None:
    cluster = deployment.c
    mon = deployment.crm_mon()
    print("\n" + mon)
    for svc in SERVICES:
        rid = deployment.resource_id(svc)
        assert cluster.resource_role(rid) == "Started", mon
        assert cluster.resource_nodes(rid) == ["node1"]
        assert cluster.fail_count(f"p_{svc.agent}", "node1") == 0
    assert cluster.resource_nodes(deployment.resource_id(None)) == ["node1"]
    assert client_get(api_url(VIP)) == "300"
    volumes = deployment.os_services("cinder-volume")
    assert {host: state for host, (state, _) in volumes.items()} == dict.fromkeys(
        deployment.volume_hosts(), "up"
    )
    cib = cluster.on("node1", "cibadmin", "--query", "--scope", "resources").stdout
    assert "password" not in cib
    assert 'name="interleave" value="true"' in cib
    # The depth-20 monitor (a round trip over the RPC bus) runs beside the other, and passes.
    deep = {f"p_{name}" for name in DEEP_MONITORED}
    assert cib.count('name="OCF_CHECK_LEVEL" value="20"') == len(deep)

    def deep_passed() -> bool:
        ran = deployment.recurring_monitors(DEEP_INTERVAL_S)
        return {rsc for (rsc, _), (rc, _) in ran.items() if rc == 0} == deep

    try:
        wait_for(deep_passed, 3 * DEEP_INTERVAL_S + 60, "every depth-20 monitor to pass")
    except HarnessTimeout:
        recorded = deployment.recurring_monitors(DEEP_INTERVAL_S)
        pytest.fail(f"depth-20 monitors as the CIB records them: {recorded}")


def _kill_api(deployment: Deployment, form: str) -> KillResult:
    result = deployment.kill_and_recover(NODE)
    RESTARTED[form] = sorted(
        k for k, v in result.neighbours_before.items() if result.neighbours_after.get(k) != v
    )
    print(f"\n[timing] {form}: SIGKILL of cinder-api -> it answers again {result.recovered_s:.2f}s; "
          f"restarted with it: {RESTARTED[form] or 'nothing'}")  # fmt: skip
    deployment.cleanup(deployment.primitive_id(API.agent))
    return result


@pytest.mark.usefixtures("client_window")
def test_under_the_default_constraints_a_killed_api_restarts_alone(deployment: Deployment) -> None:
    _kill_api(deployment, "cluster-config's default")
    assert RESTARTED["cluster-config's default"] == []


@pytest.mark.usefixtures("client_window")
def test_under_the_guide_s_constraints_a_killed_api_restarts_the_chain(deployment: Deployment) -> None:
    deployment.use_constraints(GUIDE)
    cib = deployment.c.on(NODE, "cibadmin", "--query", "--scope", "constraints").stdout
    assert 'kind="Optional"' not in cib and "c_cinder-volume_with_cinder-scheduler" in cib, cib
    _kill_api(deployment, "the guide's")
    # what the default avoids: the Mandatory orders stop and start every service after cinder-api
    assert {f"cinder-scheduler@{NODE}", f"cinder-volume@{NODE}"} <= set(RESTARTED["the guide's"])


def test_what_the_user_saw_under_each_form(deployment: Deployment) -> None:
    assert deployment.client is not None
    deployment.stop_client()
    requests = deployment.finished_client.snapshot() if deployment.finished_client else []
    default = CLIENT_VIEWS["test_under_the_default_constraints_a_killed_api_restarts_alone"]
    guide = CLIENT_VIEWS["test_under_the_guide_s_constraints_a_killed_api_restarts_the_chain"]
    for view in (default, guide):
        view.recount_unsettled(requests)
    print(f"\n[client] default: {default.line()}\n[client] the guide's: {guide.line()}")
    assert default.tried.get("create") and guide.tried.get("create")
    # no cinder-volume restart under the default: no volume of the user's may end in error
    assert default.unexplained("p_cinder-volume") == [], default.line()
    assert all(managed.ok for managed in MANAGED.values()), MANAGED


def test_stopping_the_one_node_cluster_leaves_no_cinder_process(deployment: Deployment) -> None:
    result = deployment.stop_cluster()
    assert result.leftovers == []
