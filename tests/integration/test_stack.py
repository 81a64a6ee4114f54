"""Tests of the OpenStack test harness itself, against the real services."""

from __future__ import annotations

import configparser
import contextlib
import grp
import os
import pwd
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from lab.host import children, pid_alive
from lab.stack.openstack import (
    CINDER_HOST,
    OpenStack,
    Process,
    get_token,
    http_request,
    tcp_port_open,
)

pytestmark = pytest.mark.integration


# ---- helpers ---------------------------------------------------------------------------


@contextlib.contextmanager
def cinder_service(stack: OpenStack, binary: str) -> Iterator[Process]:
    """Run a Cinder daemon of the stack venv as the service user; stopped by PID at the end."""
    uid, gid = stack.service_user_ids()
    out_path = stack.cinder_log_dir / f"{binary}.stdout"
    with out_path.open("ab") as out:
        popen = subprocess.Popen(
            [str(stack.cinder_bin(binary)), "--config-file", str(stack.cinder_conf)],
            user=uid,
            group=gid,
            extra_groups=[],  # else root's supplementary groups are kept
            env=stack.service_env(),
            cwd=str(stack.root),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Process.attach(binary, popen.pid, popen)
    try:
        yield proc
    finally:
        proc.stop(timeout=20.0)
        assert not proc.alive()


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    proc: Optional[Process] = None,
    log: Optional[Path] = None,
) -> Any:
    """Poll *check* until it returns something truthy; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if proc is not None and not proc.alive():
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{proc.name} exited while waiting for {what}\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def api_status(stack: OpenStack, path: str, token: Optional[str] = None) -> Optional[int]:
    headers = {"X-Auth-Token": token} if token else {}
    try:
        return http_request("GET", stack.cinder_url + path, headers=headers, timeout=5).status
    except OSError:
        return None


@contextlib.contextmanager
def cinder_api(stack: OpenStack) -> Iterator[Process]:
    with cinder_service(stack, "cinder-api") as proc:
        wait_for(
            "cinder-api GET / -> 300",
            lambda: api_status(stack, "/") == 300,
            90,
            proc,
            stack.cinder_log_dir / "cinder-api.stdout",
        )
        yield proc


def amqp_login(stack: OpenStack) -> subprocess.CompletedProcess:
    """AMQP connection + channel with the transport_url credentials (amqp lib of the venv)."""
    url = urllib.parse.urlsplit(stack.transport_url)
    code = (
        "import os, amqp\n"
        "c = amqp.Connection(host=os.environ['H'], userid=os.environ['U'],"
        " password=os.environ['P'], virtual_host='/', connect_timeout=5)\n"
        "c.connect(); ch = c.channel(); ch.close(); c.close(); print('amqp ok')\n"
    )
    return subprocess.run(
        [str(stack.cinder_bin("python")), "-c", code],
        env={
            "H": f"{url.hostname}:{url.port}",
            "U": url.username or "",
            "P": url.password or "",
            "PATH": "/usr/bin:/bin",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )


def services_by_host(stack: OpenStack) -> Dict[str, Dict[str, Any]]:
    return {f"{svc['binary']} {svc['host']}": svc for svc in stack.os_services()}


# ---- Keystone --------------------------------------------------------------------------


def test_keystone_issues_tokens(openstack: OpenStack) -> None:
    token, project_id = openstack.admin_token()
    assert token and project_id

    _, admin = get_token(openstack.admin)
    assert admin["project"]["name"] == "admin"
    assert "admin" in {role["name"] for role in admin["roles"]}

    _, svc = get_token(openstack.service)
    assert svc["user"]["name"] == "cinder"
    assert svc["project"]["name"] == "service"
    assert {"admin", "service"} <= {role["name"] for role in svc["roles"]}
    volume = [entry for entry in svc["catalog"] if entry["type"] == "volumev3"]
    assert len(volume) == 1
    assert {ep["interface"] for ep in volume[0]["endpoints"]} == {"public", "internal", "admin"}
    assert all(ep["url"].startswith(openstack.cinder_url + "/v3/") for ep in volume[0]["endpoints"])

    wrong = http_request(
        "POST",
        f"{openstack.keystone_url}/auth/tokens",
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "cinder", "domain": {"name": "Default"}, "password": "wrong"}
                    },
                }
            }
        },
    )
    assert wrong.status == 401

    # the benchmark counts these lines
    access_log = openstack.keystone_access_log.read_text()
    assert '"POST /v3/auth/tokens HTTP/1.1" 201' in access_log


def test_files_permissions_and_no_secret_on_command_lines(openstack: OpenStack) -> None:
    uid, gid = openstack.service_user_ids()
    conf = openstack.cinder_conf.stat()
    assert stat.S_IMODE(conf.st_mode) == 0o640
    assert (conf.st_uid, conf.st_gid) == (0, gid)
    assert grp.getgrgid(conf.st_gid).gr_name == pwd.getpwuid(uid).pw_name  # user group
    for path in (
        openstack.cinder_log_dir,
        openstack.cinder_state_dir,
        openstack.cinder_lock_dir,
        openstack.cinder_backup_dir,
        openstack.database.data_dir,
    ):
        assert path.stat().st_uid == uid, path
    # the database trusts whoever reaches its socket: the service user only
    for private in (openstack.database.directory, openstack.database.socket_dir):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
        assert private.stat().st_uid == uid, private
    for secret_file in (openstack.keystone_conf, openstack.rabbit_dir / "rabbitmq.conf"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(openstack.cinder_conf)
    assert parser["DEFAULT"]["host"] == CINDER_HOST
    assert parser["DEFAULT"]["enabled_backends"] == "fake1,fake2"
    assert parser["DEFAULT"]["transport_url"] == openstack.transport_url
    for backend in ("fake1", "fake2"):
        assert parser[backend]["volume_backend_name"] == backend
        assert parser[backend]["volume_driver"].endswith("FakeLoggingVolumeDriver")
    assert parser["keystone_authtoken"]["password"] == openstack.service.password
    for name in ("api-paste.ini", "resource_filters.json"):
        assert (openstack.cinder_etc / name).is_file()

    secrets = {
        openstack.admin.password,
        openstack.service.password,
        urllib.parse.urlsplit(openstack.transport_url).password,
    }
    assert all(s and len(s) >= 16 for s in secrets)
    assert openstack.admin.password not in repr(openstack.admin)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                assert not any(s in cmdline for s in secrets if s), f"secret in pid {entry}"


def test_overrides_in_cinder_conf(openstack: OpenStack) -> None:
    original = openstack.cinder_conf.read_text()
    try:
        openstack.write_cinder_conf(
            backends=("gold",),
            debug=True,
            report_interval=None,
            gold={"volume_backend_name": "GOLD"},
            nova={"region_name": "x"},
        )
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(openstack.cinder_conf)
        assert parser["DEFAULT"]["enabled_backends"] == "gold"
        assert parser["DEFAULT"]["debug"] == "true"
        assert "report_interval" not in parser["DEFAULT"]
        assert parser["gold"]["volume_backend_name"] == "GOLD"
        assert parser["nova"]["region_name"] == "x"
        assert not parser.has_section("fake1")
    finally:
        openstack.write_cinder_conf()
    assert openstack.cinder_conf.read_text() == original


# ---- Cinder ----------------------------------------------------------------------------


def test_cinder_api_as_service_user(openstack: OpenStack) -> None:
    token, project = openstack.admin_token()
    with cinder_api(openstack) as api:
        uid, _ = openstack.service_user_ids()
        assert os.stat(f"/proc/{api.pid}").st_uid == uid
        assert api_status(openstack, "/") == 300
        assert api_status(openstack, f"/v3/{project}/types") == 401
        assert api_status(openstack, f"/v3/{project}/types", token) == 200
        types = http_request(
            "GET", f"{openstack.cinder_url}/v3/{project}/types", headers={"X-Auth-Token": token}
        ).json()["volume_types"]
        assert "__DEFAULT__" in {t["name"] for t in types}  # the db was synced
        assert isinstance(openstack.os_services(), list)
    assert api_status(openstack, "/") is None  # stopped by PID, port closed


def test_scheduler_and_two_backends_serve_a_volume(openstack: OpenStack) -> None:
    """Full path API -> RabbitMQ -> scheduler -> volume, with the generated cinder.conf."""
    token, project = openstack.admin_token()
    headers = {"X-Auth-Token": token}
    volumes = f"{openstack.cinder_url}/v3/{project}/volumes"
    wanted = {
        f"cinder-scheduler {CINDER_HOST}",
        f"cinder-volume {CINDER_HOST}@fake1",
        f"cinder-volume {CINDER_HOST}@fake2",
    }
    wanted_backends = {f"{CINDER_HOST}@fake1", f"{CINDER_HOST}@fake2"}
    try:
        with (
            cinder_api(openstack),
            cinder_service(openstack, "cinder-scheduler"),
            cinder_service(openstack, "cinder-volume") as volume,
        ):

            def all_up() -> bool:
                found = services_by_host(openstack)
                return all(found.get(key, {}).get("state") == "up" for key in wanted)

            wait_for(
                "scheduler + 2 backends up",
                all_up,
                60,
                volume,
                openstack.cinder_log_dir / "cinder-volume.stdout",
            )
            # Up in os-services is a heartbeat; a create also needs the scheduler to hold the
            # backends' capabilities, or it fails at once ("No valid backend was found").
            wait_for(
                "the scheduler knows both backends",
                lambda: {pool.split("#")[0] for pool in openstack.scheduler_pools()} >= wanted_backends,
                60,
                volume,
                openstack.cinder_log_dir / "cinder-volume.stdout",
            )
            created = http_request(
                "POST", volumes, {"volume": {"size": 1, "name": "harness"}}, headers=headers
            )
            assert created.status == 202, created.body
            vid = created.json()["volume"]["id"]

            def status() -> Optional[str]:
                body = http_request("GET", f"{volumes}/{vid}", headers=headers).json()
                state: str = body["volume"]["status"]
                return state if state in ("available", "error") else None

            assert wait_for("volume available", status, 60) == "available"
            host = http_request("GET", f"{volumes}/{vid}", headers=headers).json()["volume"]
            assert host["os-vol-host-attr:host"].startswith(f"{CINDER_HOST}@fake")
            assert http_request("DELETE", f"{volumes}/{vid}", headers=headers).status == 202
            wait_for(
                "volume deleted",
                lambda: http_request("GET", f"{volumes}/{vid}", headers=headers).status == 404,
                60,
            )
    finally:
        # rows stay in the database after a stop: remove them for the tests that follow
        for key in sorted(wanted):
            binary, host_name = key.split(" ")
            openstack.cinder_manage("service", "remove", binary, host_name)
    with cinder_api(openstack):
        left = [svc for svc in openstack.os_services() if svc["host"].startswith(CINDER_HOST)]
        assert left == []


def test_backends_registering_together_all_come_up(openstack: OpenStack) -> None:
    """Eight backend children of one cinder-volume create their service rows and heartbeat at
    once: the lab's database takes concurrent writers (sqlite dropped about one backend start
    in six with two, "database is locked", and the lab retried around it)."""
    backends = [f"fake{index}" for index in range(1, 9)]
    wanted = {f"{CINDER_HOST}@{name}" for name in backends}
    openstack.write_cinder_conf(backends=backends)
    try:
        with cinder_api(openstack), cinder_service(openstack, "cinder-volume") as volume:

            def hosts_up() -> bool:
                found = openstack.os_services("cinder-volume")
                return {svc["host"] for svc in found if svc["state"] == "up"} >= wanted

            wait_for("8 backends up", hosts_up, 90, volume, openstack.cinder_log_dir / "cinder-volume.stdout")
            log = (openstack.cinder_log_dir / "cinder-volume.log").read_text(errors="replace")
            assert "database is locked" not in log and "OperationalError" not in log
    finally:
        openstack.write_cinder_conf()
        for host_name in sorted(wanted):
            openstack.cinder_manage("service", "remove", "cinder-volume", host_name)


# ---- outages ---------------------------------------------------------------------------


def test_keystone_outage(openstack: OpenStack) -> None:
    token, _ = openstack.admin_token()
    openstack.stop_keystone()
    try:
        assert not openstack.keystone_running()
        with pytest.raises(urllib.error.URLError) as excinfo:
            openstack.admin_token()
        assert isinstance(excinfo.value.reason, ConnectionRefusedError)
    finally:
        openstack.start_keystone()
    assert openstack.keystone_running()
    new_token, _ = openstack.admin_token()
    assert new_token
    # fernet keys persisted: a token issued before the restart is still valid
    check = http_request(
        "GET",
        f"{openstack.keystone_url}/auth/tokens",
        headers={"X-Auth-Token": new_token, "X-Subject-Token": token},
    )
    assert check.status == 200


def test_rabbitmq_outage(openstack: OpenStack) -> None:
    login = amqp_login(openstack)
    assert login.returncode == 0, login.stdout
    openstack.stop_rabbitmq()
    try:
        assert not openstack.rabbitmq_running()
        assert not tcp_port_open(openstack.host, 5672)
    finally:
        openstack.start_rabbitmq()
    assert tcp_port_open(openstack.host, 5672)
    login = amqp_login(openstack)  # the user created on first boot survived the restart
    assert login.returncode == 0, login.stdout


def test_etcd_serves_the_coordination_of_a_cinder_cluster(openstack: OpenStack) -> None:
    """The lock manager of the active/active tests: tooz's etcd3gw driver, which cinder's
    [coordination] uses for etcd3+http://, takes and releases a lock there."""
    openstack.start_etcd()
    try:
        assert openstack.etcd.healthy()
        script = (
            "import sys\n"
            "from tooz import coordination\n"
            "member = coordination.get_coordinator(sys.argv[1], b'lab-test')\n"
            "member.start()\n"
            "lock = member.get_lock(b'cinder-volume-test')\n"
            "assert lock.acquire(blocking=10)\n"
            "lock.release()\n"
            "member.stop()\n"
            "print('locked and released')\n"
        )
        done = subprocess.run(
            [str(openstack.cinder_bin("python")), "-c", script, openstack.etcd.backend_url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0 and "locked and released" in done.stdout, done.stderr[-2000:]
    finally:
        openstack.stop_etcd()
    assert not openstack.etcd_running() and not openstack.etcd.healthy(timeout=0.5)


def test_start_is_idempotent(openstack: OpenStack) -> None:
    before = (openstack._rabbit, openstack._keystone)
    openstack.start()
    assert (openstack._rabbit, openstack._keystone) == before
    assert openstack.rabbitmq_running() and openstack.keystone_running()


# ---- process helpers (no services needed) ----------------------------------------------


def test_zombie_counts_as_gone_and_tree_is_stopped() -> None:
    zombie = subprocess.Popen(["sleep", "60"])
    os.kill(zombie.pid, signal.SIGKILL)
    time.sleep(0.3)  # killed, not reaped yet
    assert Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    assert not pid_alive(zombie.pid)
    zombie.wait()

    # the shell dies on SIGTERM, its two children would survive it: stop() kills them by PID
    tree = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    proc = Process.attach("tree", tree.pid, tree)
    kids: List[int] = []
    deadline = time.monotonic() + 5
    while len(kids) < 2 and time.monotonic() < deadline:
        kids = children(tree.pid)
        time.sleep(0.05)
    assert len(kids) == 2
    proc.stop(timeout=5.0)
    assert not proc.alive()
    assert not any(pid_alive(kid) for kid in kids)
