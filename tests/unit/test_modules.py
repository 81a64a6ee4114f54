"""The library's small parts on their own: URLs, the HTTP client, state files, config sources."""

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from cinder_ocf import auth, httpclient, process
from cinder_ocf.config import CinderConfig, config_sources, load_config
from cinder_ocf.statefile import StateFileError, fingerprint, read_state, write_state


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


def test_plain_client_reads_status_headers_and_body() -> None:
    port = _serve_once(b"HTTP/1.1 300 Multiple Choices\r\nContent-Length: 2\r\n\r\n{}extra")
    answer = httpclient.get(f"http://127.0.0.1:{port}/", 2)
    assert (answer.status, answer.body, answer.json()) == (300, b"{}", {})


def test_chunked_answers_are_handed_to_requests() -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)

    def serve() -> None:
        for _ in range(2):  # the small client, then requests
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(body)
            conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    answer = httpclient.get(f"http://127.0.0.1:{server.getsockname()[1]}/", 3)
    assert answer.status == 200 and answer.json() == {}


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"", "reset"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "protocol"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", "reset"),
    ],
)
def test_plain_client_names_broken_answers(answer: bytes, kind: str) -> None:
    with pytest.raises(httpclient.HttpError) as err:
        httpclient.get(f"http://127.0.0.1:{_serve_once(answer)}/", 2)
    assert err.value.kind == kind


def test_plain_client_refused_and_timeout() -> None:
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
    write_state(str(path), {"token": "abc", "expires_at": "1"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_state(str(path)) == {"token": "abc", "expires_at": "1"}
    path.chmod(0o644)
    with pytest.raises(StateFileError):
        read_state(str(path))
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateFileError):
        read_state(str(path))
    path.unlink()
    path.write_text("no equals sign\n")
    path.chmod(0o600)
    with pytest.raises(StateFileError):
        read_state(str(path))


def test_token_cache_ignores_stale_foreign_and_other_inputs(tmp_path: Path) -> None:
    path = str(tmp_path / "token")
    fresh = auth.Token("t1", "p1", 10_000_000_000)
    auth.store_token(path, "inputs-a", fresh)
    cached = auth.read_cached_token(path, "inputs-a")
    assert cached is not None and cached.value == "t1"
    assert auth.read_cached_token(path, "inputs-b") is None
    auth.store_token(path, "inputs-a", auth.Token("t2", "p1", 1.0))  # expired
    assert auth.read_cached_token(path, "inputs-a") is None
    os.chown(path, 65534, 65534)
    assert auth.read_cached_token(path, "inputs-a") is None


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
    assert not process.is_running(process.ProcessIdentity(me.pid, me.start_ticks + 1, me.boot_id, me.exe))
    assert not process.is_running(process.ProcessIdentity(me.pid, me.start_ticks, "other-boot", me.exe))
    assert process.ProcessIdentity.parse(me.serialize()) == me


def test_keystone_unreachable_says_why_briefly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = auth.Credentials("test", f"http://127.0.0.1:{port}", username="u", password="p", project_name="p")
    with pytest.raises(auth.KeystoneError) as err:
        auth.fetch_token(creds, 2)
    assert err.value.kind == "unreachable"
    assert err.value.message.endswith("unreachable: Connection refused"), err.value.message
