"""The crm shell's form of the configuration on a one-node cluster: what `cinder-ocf
cluster-config --format crm` prints, loaded with `crm configure load update`, starts every
service (p_* primitives, cl_* clones, as the HA guide's crm examples name them), and stopping
the cluster leaves nothing behind.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from .conftest import _check_nothing_left, _ours
from .harness import VIP, netns_list
from .scenario import SERVICES, Deployment, api_url, client_get, stack_venv_for_nodes


@pytest.fixture(scope="module")
def deployment(cluster_host: None) -> Iterator[Deployment]:
    def say(line: str) -> None:
        print(f"\n[crm] {line}")

    before = _ours(netns_list())
    dep = Deployment(
        stack_venv_for_nodes(say),
        say=say,
        keep=os.environ.get("COCF_CLUSTER_KEEP", "") not in ("", "0"),
        state_dir=os.environ.get("COCF_CLUSTER_STATE_DIR") or None,
        nodes=1,
        tool="crm",
    )
    dep.up()
    try:
        yield dep
    finally:
        try:
            dep.down()
        finally:
            _check_nothing_left(before)


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
