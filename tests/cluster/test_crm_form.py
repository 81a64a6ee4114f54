"""The crm shell's form of the configuration on a one-node cluster: what `cinder-ocf
cluster-config --format crm` prints, loaded with `crm configure load update`, starts every
service (p_* primitives, cl_* clones, as the HA guide's crm examples name them), and stopping
the cluster leaves nothing behind.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from cinder_ocf.clusterconfig import DEEP_MONITORED
from lab.cluster.harness import VIP, HarnessTimeout, wait_for
from lab.cluster.scenario import SERVICES, Deployment, api_url, client_get

from .conftest import deployed

DEEP_INTERVAL_S = 8  # the depth-20 monitors, beside the depth-0 ones every 5 s


@pytest.fixture(scope="module")
def deployment(cluster_host: None) -> Iterator[Deployment]:
    with deployed("crm", nodes=1, tool="crm", deep_monitor_interval_s=DEEP_INTERVAL_S) as dep:
        yield dep


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


def test_stopping_the_one_node_cluster_leaves_no_cinder_process(deployment: Deployment) -> None:
    result = deployment.stop_cluster()
    assert result.leftovers == []
