"""cinder-ocf cluster-config: the HA guide's configuration, as pcs commands and crm configuration.

The cluster tests (tests/cluster) apply exactly these commands to a real cluster; here, their
shape and the refusals.
"""

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from cinder_ocf.agents import service
from cinder_ocf.clusterconfig import (
    DEEP_MONITOR_TIMEOUT_S,
    DEEP_MONITORED,
    SERVICE_ORDER,
    ClusterPlan,
    crm_configuration,
    pcs_commands,
)


def cli(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "cinder_ocf.cli", "cluster-config", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_pcs_commands_follow_the_ha_guide_in_pcs_0_11_syntax() -> None:
    plan = ClusterPlan("/etc/cinder/cinder.conf", vip="192.0.2.10",
                       params={"cinder-volume": {"start_grace": "120"}})  # fmt: skip
    commands = [" ".join(argv) for argv in pcs_commands(plan)]
    api, scheduler, volume = commands[:3]
    assert api.startswith("pcs resource create cinder-api ocf:openstack:cinder-api config=/etc/cinder/")
    assert api.endswith(
        "op monitor interval=10s timeout=30s monitor interval=60s timeout=60s OCF_CHECK_LEVEL=20 "
        "clone interleave=true"
    )
    assert "--clone" not in " ".join(commands), "pcs 0.11 rejects the guide's --clone"
    assert scheduler.endswith("clone interleave=true --disabled")
    assert "start_grace=120" in volume and "clone" not in volume
    order = commands.index
    # Each constraint exists before what it constrains is enabled, in the guide's start order;
    # by default the services' orders are Optional and only the VIP is colocated, with an API.
    constraints = [
        "pcs constraint order start cinder-api-clone then cinder-scheduler-clone kind=Optional",
        "pcs constraint order start cinder-scheduler-clone then cinder-volume kind=Optional",
        "pcs constraint order start cinder-api-clone then vip",
        "pcs constraint colocation add vip with cinder-api-clone",
    ]
    enable = "pcs resource enable cinder-scheduler cinder-volume vip"
    assert all(order(c) < order(enable) for c in constraints)
    assert [c for c in commands if c.startswith("pcs constraint")] == constraints
    assert commands[-1] == enable


def test_the_guide_form_orders_and_colocates_every_service_with_what_it_needs() -> None:
    plan = ClusterPlan("/etc/cinder/cinder.conf", services=list(SERVICE_ORDER), vip="192.0.2.10",
                       constraints="guide")  # fmt: skip
    constraints = [" ".join(argv) for argv in pcs_commands(plan) if argv[1] == "constraint"]
    assert constraints == [
        "pcs constraint order start cinder-api-clone then cinder-scheduler-clone kind=Mandatory",
        "pcs constraint colocation add cinder-scheduler-clone with cinder-api-clone",
        "pcs constraint order start cinder-scheduler-clone then cinder-volume kind=Mandatory",
        "pcs constraint colocation add cinder-volume with cinder-scheduler-clone",
        "pcs constraint order start cinder-scheduler-clone then cinder-backup kind=Mandatory",
        "pcs constraint colocation add cinder-backup with cinder-scheduler-clone",
        "pcs constraint order start cinder-api-clone then vip",
        "pcs constraint colocation add vip with cinder-api-clone",
    ]
    crm = crm_configuration(plan).splitlines()
    assert [line for line in crm if line.startswith(("order", "colocation"))] == [
        "order o_cinder-api_before_cinder-scheduler Mandatory: cl_cinder-api cl_cinder-scheduler",
        "colocation c_cinder-scheduler_with_cinder-api inf: cl_cinder-scheduler cl_cinder-api",
        "order o_cinder-scheduler_before_cinder-volume Mandatory: cl_cinder-scheduler p_cinder-volume",
        "colocation c_cinder-volume_with_cinder-scheduler inf: p_cinder-volume cl_cinder-scheduler",
        "order o_cinder-scheduler_before_cinder-backup Mandatory: cl_cinder-scheduler p_cinder-backup",
        "colocation c_cinder-backup_with_cinder-scheduler inf: p_cinder-backup cl_cinder-scheduler",
        "order o_cinder-api_before_vip Mandatory: cl_cinder-api p_vip",
        "colocation c_vip_with_cinder-api inf: p_vip cl_cinder-api",
    ]
    with pytest.raises(ValueError, match="choose from independent, guide"):
        ClusterPlan("/etc/cinder/cinder.conf", constraints="mandatory")


def test_the_deep_monitor_goes_to_the_agents_that_have_depth_20_checks() -> None:
    assert tuple(name for name in SERVICE_ORDER if service(name).deep_checks) == DEEP_MONITORED
    for name in DEEP_MONITORED:  # the timeout the agents' meta-data advises for it
        deep = [a for a in service(name).spec.actions if a.name == "monitor" and a.depth == 20]
        assert [a.timeout for a in deep] == [DEEP_MONITOR_TIMEOUT_S]
    plan = ClusterPlan("/etc/cinder/cinder.conf", services=list(SERVICE_ORDER))
    deep = [argv[3] for argv in pcs_commands(plan) if "OCF_CHECK_LEVEL=20" in argv]
    assert deep == ["cinder-api", "cinder-scheduler", "cinder-volume"]
    crm = crm_configuration(plan)
    assert crm.count("    op monitor interval=60s timeout=60s OCF_CHECK_LEVEL=20") == 3
    backup = "p_cinder-backup ocf:openstack:cinder-backup \\\n    params config=/etc/cinder/cinder.conf \\\n"
    assert backup + "    op monitor interval=10s timeout=30s\n" in crm
    none = ClusterPlan("/etc/cinder/cinder.conf", deep_monitor_interval_s=0)
    assert not any("OCF_CHECK_LEVEL=20" in argv for argv in pcs_commands(none))
    assert "OCF_CHECK_LEVEL" not in crm_configuration(none)


def test_crm_configuration_has_the_same_shape() -> None:
    services = ["cinder-api", "cinder-scheduler"]
    text = crm_configuration(ClusterPlan("/etc/cinder/my cinder.conf", services=services, vip="192.0.2.10"))
    assert 'cinder-api \\\n    params config="/etc/cinder/my cinder.conf"' in text
    assert "clone cl_cinder-scheduler p_cinder-scheduler \\\n    meta interleave=true" in text
    assert "order o_cinder-api_before_cinder-scheduler Optional: cl_cinder-api cl_cinder-scheduler" in text
    assert "colocation c_cinder-scheduler" not in text, "the scheduler needs no API on its node"
    assert "colocation c_vip_with_cinder-api inf: p_vip cl_cinder-api" in text
    assert "cinder-volume" not in text


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"params": {"cinder-api": {"os_password": "x"}}}, "no secret on a command line"),
        ({"params": {"cinder-volume": {"os_application_credential_secret": "x"}}}, "cinder-volume"),
        ({"services": ["cinder-volume", "cinder-schedulr"]}, "unknown services"),
        ({"services": ["cinder-scheduler"]}, "include it"),
    ],
)
def test_plans_that_cannot_work_are_refused(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ClusterPlan("/etc/cinder/cinder.conf", **kwargs)


def test_cli_notes_what_cinder_conf_lacks(tmp_path: Path) -> None:
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\nenabled_backends = a\n")
    run = cli("--config", str(conf), "--vip", "192.0.2.10")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("pcs resource create") == 4
    assert "[DEFAULT] host is not set" in run.stderr
    assert "no usable credentials" in run.stderr
    conf.write_text(
        "[DEFAULT]\nhost = shared\nenabled_backends = a\n[keystone_authtoken]\n"
        "auth_url = http://k:5000\nusername = cinder\npassword = secret-in-the-file\n"
        "[coordination]\nbackend_url = etcd3+http://192.0.2.20:2379\n"
    )
    run = cli("--config", str(conf), "--format", "crm")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "secret-in-the-file" not in run.stdout
    assert "primitive p_cinder-volume ocf:openstack:cinder-volume" in run.stdout
    guide = cli("--config", str(conf), "--format", "crm", "--constraints", "guide")
    assert "Mandatory: cl_cinder-scheduler p_cinder-volume" in guide.stdout
    assert "Optional: cl_cinder-scheduler p_cinder-volume" in run.stdout
    wrong = cli("--config", str(conf), "--constraints", "strict")
    assert wrong.returncode == 2 and "invalid choice: 'strict'" in wrong.stderr


@pytest.mark.parametrize(
    ("conf", "present", "absent"),
    [
        # Each backend named by its own backend_host: no host note, and the others' own host.
        ("[DEFAULT]\nhost = shared\nenabled_backends = a, b\n[a]\nbackend_host = x\n[b]\nbackend_host = x\n",
         ["[coordination] backend_url is unset"], ["host is not set"]),
        ("[DEFAULT]\nenabled_backends = a, b\n[a]\nbackend_host = x\n",
         ["host is not set: cinder-scheduler, cinder-volume (backends b)",
          "volumes created through one node have no service"], []),
        ("[DEFAULT]\nhost = shared\nenabled_backends = a\n[coordination]\nbackend_url = file:///var/lib/cinder\n",
         ["[coordination] backend_url is file://: node-local locks, which do not span nodes"],
         ["host is not set"]),
        ("[DEFAULT]\nhost = shared\nenabled_backends = a\n[coordination]\nbackend_url = redis://:pw@r:6379\n",
         [], ["[coordination]", "pw@"]),
    ],
)  # fmt: skip
def test_cli_notes_what_strands_volumes_after_a_failover(
    tmp_path: Path, conf: str, present: List[str], absent: List[str]
) -> None:
    notes_of(tmp_path, conf, present, absent)


def notes_of(
    tmp_path: Path, conf: str, present: List[str], absent: List[str], *args: str
) -> "subprocess.CompletedProcess[str]":
    """cluster-config for this cinder.conf: its notes have each of present, none of absent."""
    path = tmp_path / "cinder.conf"
    path.write_text(conf)
    run = cli("--config", str(path), *args)
    assert run.returncode == 0, run.stderr
    for fragment in present:
        assert fragment in run.stderr, run.stderr
    for fragment in absent:
        assert fragment not in run.stderr, run.stderr
    return run


def test_cli_refuses_a_password_parameter(tmp_path: Path) -> None:
    run = cli("--config", str(tmp_path / "none.conf"), "--param", "cinder-api:os_password=hunter2")
    assert run.returncode != 0
    assert "no secret on a command line" in run.stderr


@pytest.mark.parametrize("constraints", ["independent", "guide"])
def test_active_active_clones_cinder_volume_after_the_schedulers(constraints: str) -> None:
    plan = ClusterPlan("/etc/cinder/cinder.conf", vip="192.0.2.10", constraints=constraints,
                       volume_mode="active-active")  # fmt: skip
    commands = [" ".join(argv) for argv in pcs_commands(plan)]
    volume = next(c for c in commands if c.startswith("pcs resource create cinder-volume "))
    assert volume.endswith("clone interleave=true --disabled"), volume
    kind = "Mandatory" if constraints == "guide" else "Optional"
    order = f"pcs constraint order start cinder-scheduler-clone then cinder-volume-clone kind={kind}"
    assert order in commands, commands
    colocation = "pcs constraint colocation add cinder-volume-clone with cinder-scheduler-clone"
    assert (colocation in commands) is (constraints == "guide"), commands
    crm = crm_configuration(plan)
    assert "clone cl_cinder-volume p_cinder-volume \\\n    meta interleave=true" in crm
    assert f"{kind}: cl_cinder-scheduler cl_cinder-volume" in crm
    # Active/passive stays the default: one cinder-volume primitive.
    default = crm_configuration(ClusterPlan("/etc/cinder/cinder.conf"))
    assert "cl_cinder-volume" not in default and "p_cinder-volume" in default


@pytest.mark.parametrize(
    ("conf", "present", "absent"),
    [
        ("[DEFAULT]\nhost = shared\nenabled_backends = a\n",
         ["cinder.conf on every node, for active/active", "sets no [DEFAULT] cluster",
          "backend_url is node-local (unset)", "sets host = shared: one name on every node"],
         ["[DEFAULT] host is not set"]),
        ("[DEFAULT]\ncluster = c\nenabled_backends = a\n[a]\nbackend_host = x\n"
         "[coordination]\nbackend_url = etcd3+http://192.0.2.20:2379\n",
         ["[a] backend_host = x"], ["sets no [DEFAULT] cluster", "node-local", "host is not set"]),
        ("[DEFAULT]\ncluster = c\nenabled_backends = a\n[coordination]\nbackend_url = redis://:pw@r:6379\n",
         [], ["the clone would be refused", "one name on every node", "pw@"]),
    ],
)  # fmt: skip
def test_cli_notes_what_active_active_needs(
    tmp_path: Path, conf: str, present: List[str], absent: List[str]
) -> None:
    run = notes_of(tmp_path, conf, present, absent, "--volume-mode", "active-active")
    volume = run.stdout.split("pcs resource create cinder-volume", 1)[1].splitlines()[0]
    assert "clone interleave=true" in volume, run.stdout
