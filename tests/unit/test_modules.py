"""The library's small parts on their own: URLs, the HTTP client, state files, config sources."""

import datetime
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from cinder_ocf import trusted
from cinder_ocf.openstack import http as httpclient
from cinder_ocf.openstack import keystone as auth
from cinder_ocf.openstack.conf import AuthSection, CinderConfig, config_sources, fingerprint, load_config
from cinder_ocf.supervisor import processes as process


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:5000/v2.0/tokens", "http://127.0.0.1:5000/v3"),
        ("http://keystone:5000/v2.0", "http://keystone:5000/v3"),
        ("https://keystone/identity/v3/", "https://keystone/identity/v3"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/v3"),
        ("http://[::1]:5000", "http://[::1]:5000/v3"),
    ],
)
def test_keystone_urls_map_to_v3(url: str, expected: str) -> None:
    assert auth.keystone_v3_url(url) == expected


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://127.0.0.1:8776/v1/", ("http", "127.0.0.1", 8776, "/v1/")),
        ("https://api.example", ("https", "api.example", 443, "/")),
        ("http://[::1]:8776", ("http", "::1", 8776, "/")),
    ],
)
def test_split_url(url: str, parts: tuple) -> None:
    assert httpclient.split_url(url) == parts


@pytest.mark.parametrize("url", ["ftp://x/", "http://", "http://h:99999/", "http://u:p@h/", "h:80"])
def test_split_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        httpclient.split_url(url)


@pytest.mark.parametrize(
    ("listen", "url"),
    [("0.0.0.0", "http://127.0.0.1:8776"), ("::", "http://[::1]:8776"), ("10.0.0.5", "http://10.0.0.5:8776")],
)
def test_wildcard_listen_address_means_loopback(listen: str, url: str) -> None:
    assert CinderConfig(osapi_volume_listen=listen).api_url == url


def _serve_once(answer: bytes) -> int:
    """A one-shot server that sends answer (raw bytes) and closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(answer)
        conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_client_reads_status_headers_and_body() -> None:
    port = _serve_once(b"HTTP/1.1 300 Multiple Choices\r\nContent-Length: 2\r\n\r\n{}extra")
    answer = httpclient.get(f"http://127.0.0.1:{port}/", 2)
    assert (answer.status, answer.body, answer.json()) == (300, b"{}", {})


def test_chunked_answers_are_read_in_one_request() -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    answer = httpclient.get(f"http://127.0.0.1:{_serve_once(body)}/", 3)
    assert answer.status == 200 and answer.json() == {}


def test_an_answer_dripping_a_byte_at_a_time_ends_at_the_deadline() -> None:
    """A socket timeout bounds each read; the request as a whole must end by its deadline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
                if stop.wait(0.2):
                    break
                conn.sendall(bytes([byte]))
        except OSError:
            pass
        conn.close()
        server.close()

    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(httpclient.HttpError) as err:
            httpclient.get(f"http://127.0.0.1:{server.getsockname()[1]}/", 1.0)
    finally:
        stop.set()
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"", "reset"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "protocol"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", "reset"),
    ],
)
def test_client_names_broken_answers(answer: bytes, kind: str) -> None:
    with pytest.raises(httpclient.HttpError) as err:
        httpclient.get(f"http://127.0.0.1:{_serve_once(answer)}/", 2)
    assert err.value.kind == kind


def test_client_refused_and_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpclient.HttpError) as err:
        httpclient.get(f"http://127.0.0.1:{port}/", 1)
    assert err.value.kind == "refused"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(httpclient.HttpError) as err:
            httpclient.get(f"http://127.0.0.1:{silent.getsockname()[1]}/", 0.5)
    assert err.value.kind == "timeout"


def test_state_files_are_0600_and_untrusted_ones_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    trusted.write_json(str(path), {"token": "abc", "expires_at": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert trusted.read_json(str(path)) == {"token": "abc", "expires_at": 1}
    path.chmod(0o644)
    assert trusted.read_json(str(path)) is None
    with pytest.raises(trusted.UntrustedFile, match="not 0600"):
        trusted.read_trusted(str(path), "state file", private=True)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(trusted.UntrustedFile, match="symbolic link"):
        trusted.read_trusted(str(path), "state file", private=True)
    path.unlink()
    path.write_text("not json\n")
    path.chmod(0o600)
    assert trusted.read_json(str(path)) is None
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(trusted.UntrustedFile, match="not a regular file"):
        trusted.read_trusted(str(tmp_path / "fifo"), "state file", private=True)


def _auth_state(token: str, expires_at: float) -> str:
    stamp = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    body = {"token": {"expires_at": stamp, "project": {"id": "p1"}, "catalog": []}}
    return json.dumps({"auth_token": token, "body": body})


def test_token_cache_ignores_stale_foreign_and_other_inputs(tmp_path: Path) -> None:
    path = str(tmp_path / "token")
    cache = auth.TokenCache(path, "inputs-a")
    far = 10_000_000_000.0
    cache.store(auth.Fetched(auth.token_of(_auth_state("t1", far), "http://v"), _auth_state("t1", far), "id"))
    cached = cache.load()
    assert cached is not None and (cached.value, cached.project_id, cached.endpoint) == (
        "t1",
        "p1",
        "http://v",
    )
    assert cached.expires_at == pytest.approx(far)
    assert auth.TokenCache(path, "inputs-b").load() is None
    cache.store(
        auth.Fetched(auth.token_of(_auth_state("t2", 1.0), ""), _auth_state("t2", 1.0), "id")
    )  # expired
    assert cache.load() is None
    cache.store(auth.Fetched(auth.token_of(_auth_state("t3", far), ""), _auth_state("t3", far), "id"))
    os.chown(path, 65534, 65534)
    assert cache.load() is None


def test_fingerprint_changes_with_file_content_and_parameters(tmp_path: Path) -> None:
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    first = fingerprint({"a": "1"}, [str(conf)])
    assert fingerprint({"a": "1"}, [str(conf)]) == first
    assert fingerprint({"a": "2"}, [str(conf)]) != first
    conf.write_text("[DEFAULT]\nhost = x\n")
    assert fingerprint({"a": "1"}, [str(conf)]) != first


def test_config_sources_follow_additional_parameters() -> None:
    files, dirs = config_sources(
        "/etc/cinder/cinder.conf", ["--config-file", "/etc/cinder/extra.conf", "--config-dir=/etc/cinder/d"]
    )
    assert files == ["/etc/cinder/cinder.conf", "/etc/cinder/extra.conf"]
    assert dirs == ["/etc/cinder/d"]


def test_load_config_reads_cinder_options(tmp_path: Path) -> None:
    conf = tmp_path / "cinder.conf"
    conf.write_text(
        "[DEFAULT]\nosapi_volume_listen = ::\nosapi_volume_listen_port = 18776\nhost = shared\n"
        "enabled_backends = a, b\n[keystone_authtoken]\nauth_url = http://k:5000\nusername = cinder\n"
    )
    config = load_config([str(conf)])
    assert config.api_url == "http://[::1]:18776"
    assert config.enabled_backends == ("a", "b")
    assert config.keystone_authtoken.username == "cinder"
    assert config.rabbit_reconnect_pause == 31.0  # oslo.messaging's defaults: 30 + 1 + 0
    conf.write_text(
        "[oslo_messaging_rabbit]\nrabbit_interval_max = 10\nkombu_reconnect_delay = 0.5\n"
        "kombu_reconnect_splay = 2\n"
    )
    assert load_config([str(conf)]).rabbit_reconnect_pause == 12.5


def test_identity_matches_only_the_same_process() -> None:
    me = process.identity_of(os.getpid())
    assert me is not None and process.is_running(me)
    assert me.exe == os.path.realpath(sys.executable)
    assert not process.is_running(process.ProcessIdentity(me.pid, me.start_ticks + 1, me.boot_id, me.exe))
    assert not process.is_running(
        process.ProcessIdentity(me.pid, me.start_ticks, me.boot_id, "/usr/bin/sleep")
    )
    assert not process.is_running(process.ProcessIdentity(me.pid, me.start_ticks, "other-boot", me.exe))
    assert process.ProcessIdentity.parse(me.serialize()) == me


def test_keystone_unreachable_says_why_briefly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = auth.Credentials.build(
        "test", f"http://127.0.0.1:{port}", {"username": "u", "password": "p", "project_name": "p"}
    )
    with pytest.raises(auth.KeystoneError) as err:
        auth.fetch_token(creds, 2)
    assert err.value.kind == "unreachable"
    assert err.value.message.endswith("unreachable: Connection refused"), err.value.message


def test_root_cause_stops_at_a_suppressed_context() -> None:
    """urllib3 1.26 (RHEL 9) raises its timeout `from None` over an unrelated TypeError: the
    reason must say "timed out", not name that TypeError."""

    def failing() -> None:
        try:
            try:
                raise TypeError("getresponse() got an unexpected keyword argument 'buffering'")
            except TypeError:
                raise TimeoutError("timed out") from None
        except TimeoutError as err:
            raise ConnectionError("read timeout") from err

    with pytest.raises(ConnectionError) as caught:
        failing()
    assert httpclient.root_cause(caught.value) == "timed out"


def test_a_new_process_is_young() -> None:
    """Ages come from the boot clock at tick precision: psutil's boot time has whole seconds
    only, which aged every process by up to a second."""
    child = subprocess.Popen(["sleep", "5"])
    try:
        proc = psutil.Process(child.pid)
        assert process.age_seconds(proc) < 0.5
        identity = process.identity_of(child.pid)
        assert identity is not None and abs(process.started_at(identity) - time.time()) < 0.5
    finally:
        child.kill()
        child.wait()


def test_records_holding_secrets_do_not_print_them() -> None:
    """The records are NamedTuples, whose own repr prints every field: those with a secret
    print it hidden, so that a traceback or a debugger session shows no password."""
    secret = "s3cret-in-a-record"
    records = [
        AuthSection(username="cinder", password=secret, application_credential_secret=secret),
        CinderConfig(host="node1", transport_url=f"rabbit://cinder:{secret}@broker:5672/"),
        auth.Credentials.build("parameters", "http://127.0.0.1:5000", {"username": "u", "password": secret}),
        auth.Token(secret, "project-1", 0.0),
        auth.Fetched(auth.Token(secret, "project-1", 0.0), json.dumps({"body": secret}), "cache-id"),
    ]
    for record in records:
        shown = repr(record)
        assert secret not in shown and "<hidden>" in shown, shown
        assert type(record).__name__ in shown
    assert "node1" in repr(records[1]) and "project-1" in repr(records[3])  # the rest is printed


@pytest.mark.parametrize("agent", ["cinder-api", "cinder-volume", "cinder-scheduler", "cinder-backup"])
def test_a_monitor_imports_no_dataclasses(agent: str) -> None:
    """What every action imports (the agent's module, the dispatch, the supervisor) generates no
    dataclass: importing dataclasses (inspect, ast, dis) and generating each class's methods cost
    a recurring monitor ~25 ms of ~140 (make bench); the records are NamedTuples."""
    code = (
        "import sys\n"
        "from cinder_ocf.agents import service\n"
        "import cinder_ocf.dispatch, cinder_ocf.supervisor.lifecycle\n"
        f"service({agent!r})\n"
        "heavy = ('dataclasses', 'inspect', 'keystoneauth1', 'oslo_config')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out
