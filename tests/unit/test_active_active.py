"""cinder-volume active/active (issue 15, point 1): what a clone needs of cinder.conf, and the
drivers' SUPPORTS_ACTIVE_ACTIVE read by cinder's own interpreter.

The fake cinder-volume's interpreter is a venv of this Python whose site-packages holds two
driver classes of the test's, one that declares SUPPORTS_ACTIVE_ACTIVE and one that does not,
as cinder's own drivers do (tests/integration has cinder's real ones).
"""

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.fakes.broker import FakeEtcd
from tests.unit.inprocess import FakeClock, act
from tests.unit.resources import Resource

CLONE = {"OCF_RESKEY_CRM_meta_clone_max": "2", "OCF_RESKEY_CRM_meta_clone_node_max": "1"}
SAFE = "aa_drivers.Safe"
UNSAFE = "aa_drivers.Unsafe"
SHARED_LOCKS = {"coordination": {"backend_url": "etcd3+http://127.0.0.1:2379"}}


@pytest.fixture(scope="module")
def cinder_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter whose site-packages has the driver classes: a venv of this Python."""
    venv = tmp_path_factory.mktemp("cinder-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "aa_drivers.py").write_text(
        "class Safe:\n    SUPPORTS_ACTIVE_ACTIVE = True\n\n\n"
        "class Unsafe:\n    SUPPORTS_ACTIVE_ACTIVE = False\n"
    )
    venv.chmod(0o755)  # the probe runs as the daemon's user
    return str(venv / "bin" / "python")


@pytest.fixture
def volume(agents_dir: Path, cinder_python: str) -> Iterator[Resource]:
    resource = Resource(agents_dir, "cinder-volume", runner="inprocess")
    body = resource.binary.read_text().split("\n", 1)[1]
    resource.binary.write_text(f"#!{cinder_python}\n{body}")
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
        ({"host": None}, backends(SAFE), 6, ["(cloned) needs [DEFAULT] cluster", "or do not clone"]),
        (active_active(), {"b1": {"volume_driver": SAFE}}, 6, ["backend_url all nodes share", "unset (file://)"]),
        (active_active(), {"coordination": {"backend_url": "file:///var/lib/cinder"}}, 6, ["not file://"]),
        (active_active(host="cinder-cluster"), backends(SAFE), 6,
         ["needs each node its own host", "host = cinder-cluster", "same host@backend"]),
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
    kept = json.loads(cache.read_text())
    assert kept["answers"] == {SAFE: True}, kept
    # The kept answer is what the next validate-all goes by (no second import): told False...
    cache.write_text(json.dumps({**kept, "answers": {SAFE: False}}))
    assert validate(volume).code == 6
    # ...until the binary changes (an upgrade replaces it): then the class is asked again.
    volume.binary.write_text(volume.binary.read_text() + "\n# upgraded\n")
    assert validate(volume).code == 0
    assert json.loads(cache.read_text())["answers"] == {SAFE: True}


def test_a_binary_that_is_not_a_script_is_a_warning(volume: Resource) -> None:
    """cinder itself refuses a clustered backend whose driver lacks the flag: the agent's check
    comes earlier, so not being able to make it only warns."""
    volume.binary.write_bytes(b"\x7fELF" + volume.binary.read_bytes())
    configure(volume, active_active(), backends(UNSAFE))
    run = validate(volume)
    assert run.code == 0, run
    assert "cannot tell whether the drivers support active/active" in run.log, run.log


# ---------------------------------------------------------------- what the monitor adds (pt 2)
OCF_1_1 = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}


@pytest.fixture
def etcd() -> Iterator[FakeEtcd]:
    fake = FakeEtcd()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def serving(volume: Resource, etcd: FakeEtcd) -> Resource:
    """A node of the cinder cluster cinder-aa, started: its backends under the node's name."""
    host = socket.gethostname()
    assert volume.services is not None
    volume.services.rows = {f"{host}@b1": "up", f"{host}@b2": "up"}
    volume.services.clusters = {"cinder-aa@b1": (2, 0), "cinder-aa@b2": (2, 0)}
    locks = {"coordination": {"backend_url": f"etcd3+http://127.0.0.1:{etcd.port}"}}
    configure(volume, active_active(), {**backends(SAFE), **locks})
    started = act(volume.agent, "start", FakeClock(), timeout_s=60, extra_env=CLONE)
    assert started.code == 0, started
    return volume


def monitor(res: Resource, ocf_1_1: bool = False):  # type: ignore[no-untyped-def]
    return act(res.agent, "monitor", FakeClock(), extra_env={**CLONE, **(OCF_1_1 if ocf_1_1 else {})})


def test_a_healthy_cluster_member_monitors_clean(serving: Resource) -> None:
    run = monitor(serving)
    assert run.code == 0, run
    assert "WARNING" not in run.log, run.log


@pytest.mark.parametrize(
    ("health", "said"),
    [("false", "HTTP 200, health false"), ("503", "HTTP 503"), ("closed", "refused")],
)
def test_the_lock_manager_down_is_degraded_not_a_failure(
    serving: Resource, etcd: FakeEtcd, health: str, said: str
) -> None:
    if health == "closed":
        etcd.close()
    else:
        etcd.health = health
    run = monitor(serving)
    assert run.code == 0, run  # a restart here would fix nothing
    assert "WARNING" in run.log, run.log
    assert "the lock manager of [coordination] backend_url does not answer" in run.log
    assert said in run.log, run.log
    recurring = monitor(serving, ocf_1_1=True)
    assert recurring.code == 190, recurring
    assert "coordination: the lock manager" in recurring.reason, recurring


def test_a_lost_member_of_the_cinder_cluster_is_reported(serving: Resource) -> None:
    assert serving.services is not None
    serving.services.clusters["cinder-aa@b2"] = (2, 1)
    run = monitor(serving)
    assert run.code == 0, run
    assert "the cinder cluster has lost members: cinder-aa@b2: 1 of 2 hosts down" in run.log, run.log
    recurring = monitor(serving, ocf_1_1=True)
    assert recurring.code == 190 and "cinder-aa@b2: 1 of 2 hosts down" in recurring.reason, recurring
    del serving.services.clusters["cinder-aa@b1"]
    assert "cinder-aa@b1: not listed" in monitor(serving).log


def test_active_passive_asks_neither(volume: Resource, etcd: FakeEtcd) -> None:
    """A primitive (the default) makes no request for them: its monitor costs what it did."""
    assert volume.services is not None
    locks = {"coordination": {"backend_url": f"etcd3+http://127.0.0.1:{etcd.port}"}}
    configure(volume, sections=locks)
    etcd.close()  # would be a warning if asked
    volume.services.clusters = {}  # and so would a missing cluster
    assert act(volume.agent, "start", FakeClock(), timeout_s=60).code == 0
    run = act(volume.agent, "monitor", FakeClock())
    assert run.code == 0 and "WARNING" not in run.log, run
