"""cinder-volume active/active (issue 15, point 1): what a clone needs of cinder.conf, and the
drivers' SUPPORTS_ACTIVE_ACTIVE read by cinder's own interpreter.

The fake cinder-volume's interpreter is a wrapper of this venv's Python whose path holds two
driver classes of the test's, one that declares SUPPORTS_ACTIVE_ACTIVE and one that does not,
as cinder's own drivers do (tests/integration has cinder's real ones).
"""

import socket
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.unit.inprocess import FakeClock, act
from tests.unit.resources import Resource

CLONE = {"OCF_RESKEY_CRM_meta_clone_max": "2", "OCF_RESKEY_CRM_meta_clone_node_max": "1"}
SAFE = "aa_drivers.Safe"
UNSAFE = "aa_drivers.Unsafe"
SHARED_LOCKS = {"coordination": {"backend_url": "etcd3+http://127.0.0.1:2379"}}


@pytest.fixture
def volume(agents_dir: Path) -> Iterator[Resource]:
    resource = Resource(agents_dir, "cinder-volume", runner="inprocess")
    drivers = resource.workdir / "drivers"
    drivers.mkdir()
    (drivers / "aa_drivers.py").write_text(
        "class Safe:\n    SUPPORTS_ACTIVE_ACTIVE = True\n\n\n"
        "class Unsafe:\n    SUPPORTS_ACTIVE_ACTIVE = False\n"
    )
    python = resource.workdir / "cinder-python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={drivers} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    body = resource.binary.read_text().split("\n", 1)[1]
    resource.binary.write_text(f"#!{python}\n{body}")
    try:
        yield resource
    finally:
        resource.close()


def configure(
    res: Resource,
    default: Optional[Dict[str, Optional[str]]] = None,
    sections: Optional[Dict[str, Dict[str, str]]] = None,
) -> None:
    """The fake's cinder.conf with default's options and more sections (a backend's, say)."""
    lines: List[str] = res.config_lines(default)
    for name, options in (sections or {}).items():
        lines += [f"[{name}]", *(f"{k} = {v}" for k, v in options.items())]
    res.config.write_text("\n".join(lines) + "\n")


def active_active(**default: Optional[str]) -> Dict[str, Optional[str]]:
    """[DEFAULT] of a node of a cinder cluster: cluster set, no host (the node's own name)."""
    return {"cluster": "cinder-aa", "host": None, **default}


def backends(driver: str, **more: str) -> Dict[str, Dict[str, str]]:
    return {**SHARED_LOCKS, "b1": {"volume_driver": driver, **more}, "b2": {"volume_driver": driver}}


def validate(res: Resource, cloned: bool = True):  # type: ignore[no-untyped-def]
    return act(res.agent, "validate-all", FakeClock(), timeout_s=30, extra_env=CLONE if cloned else {})


def test_a_clone_that_can_serve_a_cluster_validates(volume: Resource) -> None:
    configure(volume, active_active(), backends(SAFE))
    run = validate(volume)
    assert run.code == 0, run
    assert "WARNING" not in run.log, run.log
    # The host warning of active/passive does not apply: each node is its own host here.
    assert "sets neither host" not in run.log


@pytest.mark.parametrize(
    ("default", "sections", "code", "fragments"),
    [
        ({"host": None}, backends(SAFE), 6, ["must set [DEFAULT] cluster", "Or do not clone it"]),
        (active_active(), {"b1": {"volume_driver": SAFE}}, 6, ["[coordination] backend_url", "unset (file://)"]),
        (active_active(), {"coordination": {"backend_url": "file:///var/lib/cinder"}}, 6, ["it is file://"]),
        (active_active(host="cinder-cluster"), backends(SAFE), 6,
         ["must leave each node its own host", "host = cinder-cluster", "same host@backend"]),
        (active_active(), backends(SAFE, backend_host="shared"), 6, ["[b1] backend_host = shared"]),
        (active_active(), backends(UNSAFE), 6,
         [f"{UNSAFE} (backend b1, b2) does not", "declare SUPPORTS_ACTIVE_ACTIVE", "active/passive"]),
        (active_active(), {**SHARED_LOCKS, "b1": {"volume_driver": SAFE}, "b2": {"volume_driver": UNSAFE}}, 6,
         [f"{UNSAFE} (backend b2)"]),
        (active_active(), backends("aa_drivers.Missing"), 5,
         ["volume_driver aa_drivers.Missing (backend b1, b2) cannot be imported", "AttributeError"]),
        (active_active(), backends("no_such_module.Driver"), 5, ["ModuleNotFoundError"]),
        # cinder's default driver (LVM) when a backend names none: not importable here.
        (active_active(), SHARED_LOCKS, 5, ["cinder.volume.drivers.lvm.LVMVolumeDriver"]),
    ],
    ids=["no-cluster", "locks-unset", "locks-file", "shared-host", "shared-backend-host", "unsafe-driver",
         "one-unsafe-backend", "no-such-class", "no-such-module", "default-driver"],
)  # fmt: skip
def test_a_clone_that_would_corrupt_volumes_is_refused(
    volume: Resource, default: Dict[str, Optional[str]], sections: Dict[str, Dict[str, str]], code: int,
    fragments: List[str],
) -> None:  # fmt: skip
    configure(volume, default, sections)
    run = validate(volume)
    assert run.code == code, run
    for fragment in fragments:
        assert fragment in run.reason, run.reason
    started = act(volume.agent, "start", FakeClock(), timeout_s=30, extra_env=CLONE)
    assert started.code == code, started  # start validates the same way, and spawns nothing
    assert volume.pid() is None


def test_this_nodes_own_name_as_host_is_its_own_host(volume: Resource) -> None:
    configure(volume, active_active(host=socket.gethostname()), backends(SAFE))
    assert validate(volume).code == 0


def test_a_primitive_with_cluster_set_is_a_warning_that_says_what_was_meant(volume: Resource) -> None:
    configure(volume, {"cluster": "cinder-aa"}, backends(UNSAFE))
    run = validate(volume, cloned=False)
    assert run.code == 0, run  # active/passive: the driver need not support a cluster
    assert "WARNING" in run.log, run.log
    assert "sets cluster = cinder-aa, but this cinder-volume is not cloned" in run.log
    assert "--volume-mode active-active" in run.log and "remove cluster" in run.log


def test_the_drivers_answer_is_kept_until_the_binary_changes(volume: Resource) -> None:
    configure(volume, active_active(), backends(SAFE))
    assert validate(volume).code == 0
    cache = volume.rsctmp / "cinder-ocf-p_cinder-volume.drivers"
    assert cache.exists(), sorted(p.name for p in volume.rsctmp.iterdir())
    # The class changes its mind (a cinder upgrade): the kept answer stands until the binary
    # (or the drivers named) change, as an upgrade replaces the binary.
    drivers = volume.workdir / "drivers" / "aa_drivers.py"
    drivers.write_text(drivers.read_text().replace("= True", "= False"))
    assert validate(volume).code == 0
    volume.binary.write_text(volume.binary.read_text() + "\n# upgraded\n")
    run = validate(volume)
    assert run.code == 6 and f"{SAFE} (backend b1, b2) does not" in run.reason, run


def test_a_binary_that_is_not_a_script_is_a_warning(volume: Resource) -> None:
    """cinder itself refuses a clustered backend whose driver lacks the flag: the agent's check
    comes earlier, so not being able to make it only warns."""
    volume.binary.write_bytes(b"\x7fELF" + volume.binary.read_bytes())
    configure(volume, active_active(), backends(UNSAFE))
    run = validate(volume)
    assert run.code == 0, run
    assert "cannot tell whether the drivers support active/active" in run.log, run.log
