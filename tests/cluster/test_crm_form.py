"""The crm shell's form of the configuration on a one-node cluster: what `cinder-ocf
cluster-config --format crm` prints, loaded with `crm configure load update`, starts every
service (p_* primitives, cl_* clones, as the HA guide's crm examples name them), and stopping
the cluster leaves nothing behind.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from lab.cluster.harness import VIP
from lab.cluster.scenario import SERVICES, Deployment, api_url, client_get

from .conftest import deployed


@pytest.fixture(scope="module")
def deployment(cluster_host: None) -> Iterator[Deployment]:
    with deployed("crm", nodes=1, tool="crm") as dep:
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


def test_stopping_the_one_node_cluster_leaves_no_cinder_process(deployment: Deployment) -> None:
    result = deployment.stop_cluster()
    assert result.leftovers == []
