"""The cinder-api agent, run as Pacemaker runs it, against a daemon and a Keystone that misbehave.

Each test is a row of the monitor table in design.md or a bad input of issue 2.  The real
cinder-api and Keystone are in tests/integration; here the faults are made on demand.
"""

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from lab.host import process_state, session_members, wait_until
from tests.conftest import ocf_tester
from tests.unit.conftest import PASSWORD, FakeApi
from tests.unit.resources import CUT_SHORT


def test_start_monitor_stop_cycle(fake: FakeApi) -> None:
    assert fake.agent("monitor").rc == 7
    started = fake.agent("start")
    assert started.rc == 0, started
    assert fake.agent("start").rc == 0  # idempotent: no second daemon
    pid = fake.pid()
    assert len(session_members(pid)) == 1
    first = fake.agent("monitor")
    assert first.rc == 0, first
    assert fake.keystone.token_requests == 1
    second = fake.agent("monitor")
    assert second.rc == 0, second
    assert fake.keystone.token_requests == 1, "the cached token must be reused"
    cache = fake.rsctmp / "cinder-ocf-p_cinder-api.token"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    stopped = fake.agent("stop")
    assert stopped.rc == 0, stopped
    assert process_state(pid) is None
    assert not fake.agent.pid_file().exists()
    assert fake.agent("stop").rc == 0  # idempotent
    assert fake.agent("monitor").rc == 7


def test_probe_on_a_node_without_cinder_is_not_running(fake: FakeApi) -> None:
    fake.agent.params.update(binary="/nonexistent/cinder-api", config="/nonexistent/cinder.conf")
    probe = fake.agent("monitor", interval_s=0)
    assert probe.rc == 7, probe
    assert fake.agent("stop").rc == 0


def test_keystone_down_is_a_warning_not_a_failure(fake: FakeApi) -> None:
    assert fake.agent("start").rc == 0
    fake.keystone.close()
    (fake.rsctmp / "cinder-ocf-p_cinder-api.token").unlink()
    run = fake.agent("monitor")
    assert run.rc == 0, run
    assert "WARNING" in run.stderr and "unreachable" in run.stderr


@pytest.mark.parametrize("mode", ["error500", "reject401"])
def test_keystone_failing_is_a_warning(fake: FakeApi, mode: str) -> None:
    fake.keystone.mode = mode
    run = fake.agent("start")
    assert run.rc == 0, run
    assert "WARNING" in run.stderr
    assert fake.agent("monitor").rc == 0


def test_api_answering_500_fails(fake: FakeApi) -> None:
    fake.configure(mode="error500")
    fake.agent.params["url"] = fake.url
    start = fake.agent("start", timeout_s=3)
    assert start.rc == 1
    assert "did not become healthy" in start.reason and "HTTP 500" in start.reason


def test_hung_api_fails_before_the_operation_timeout(fake: FakeApi) -> None:
    assert fake.agent("start").rc == 0
    os.kill(fake.pid(), signal.SIGSTOP)
    try:
        fake.agent.params["check_timeout"] = "60"  # the op timeout must still win
        run = fake.agent("monitor", timeout_s=2, runner="exec")  # interpreter start-up included
        assert run.rc == 1, run
        assert run.seconds < 2
        # The check's own deadline, or on a starved node the alarm just after it (CUT_SHORT).
        assert any(f in run.reason for f in ("does not answer", *CUT_SHORT)), run
    finally:
        os.kill(fake.pid(), signal.SIGCONT)


def test_api_rejecting_a_fresh_token_fails(fake: FakeApi) -> None:
    fake.configure(mode="reject403")
    start = fake.agent("start", timeout_s=3)
    assert start.rc == 1, start
    assert "rejects a valid Keystone token: HTTP 403" in start.reason
    run = fake.agent("monitor")  # the failed start left the daemon for stop to end
    assert run.rc == 1, run
    assert "HTTP 403" in run.reason


def test_revoked_cached_token_is_renewed_once(fake: FakeApi) -> None:
    assert fake.agent("start").rc == 0
    assert fake.keystone.token_requests == 1
    fake.tokens_file.write_text("")  # the API now rejects the cached token
    run = fake.agent("monitor")
    assert run.rc == 0, run
    assert fake.keystone.token_requests == 2


def test_daemon_dying_in_start_fails_at_once_quoting_its_output(fake: FakeApi) -> None:
    fake.configure(mode="die")
    run = fake.agent("start", timeout_s=30)
    assert run.rc == 1
    assert run.seconds < 5
    assert "exited with status 3" in run.reason
    assert "cannot load app" in run.reason


def test_slow_start_is_cut_before_the_operation_timeout(fake: FakeApi) -> None:
    fake.configure(start_delay="30")
    run = fake.agent("start", timeout_s=2, runner="exec")  # interpreter start-up included
    assert run.rc == 1
    assert run.seconds < 2
    assert any(f in run.reason for f in CUT_SHORT), run


def test_stop_ends_the_whole_tree_even_when_it_ignores_sigterm(fake: FakeApi) -> None:
    fake.configure(workers="2", ignore_term="yes")
    assert fake.agent("start").rc == 0
    leader = fake.pid()
    assert wait_until(lambda: len(session_members(leader)) == 3, 5)
    run = fake.agent("stop", timeout_s=3, runner="exec")  # within its op timeout, start-up included
    assert run.rc == 0, run
    assert run.seconds < 3
    assert "SIGKILL" in run.stderr
    assert session_members(leader) == []


def test_dead_parent_with_live_workers_is_a_failure_and_stop_ends_them(fake: FakeApi) -> None:
    fake.configure(workers="2")
    assert fake.agent("start").rc == 0
    leader = fake.pid()
    assert wait_until(lambda: len(session_members(leader)) == 3, 5)
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: process_state(leader) is None, 5)
    run = fake.agent("monitor")
    assert run.rc == 1, run
    assert "is gone but 2 of its processes still run" in run.reason
    assert fake.agent("stop").rc == 0
    assert session_members(leader) == []


def test_reused_pid_is_not_running_and_never_signalled(fake: FakeApi) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        start_ticks = int(Path(f"/proc/{bystander.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        # What start would have recorded for an earlier process with this pid.
        pid_file = fake.agent.pid_file()
        pid_file.write_text(f"{bystander.pid} {start_ticks - 100} {boot_id} /usr/bin/sleep\n")
        assert fake.agent("monitor").rc == 7
        assert fake.agent("stop").rc == 0
        assert bystander.poll() is None, "stop must not touch a process that is not ours"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("content", ["", "garbage\n", "-5 1 x /bin/sh\n", "99999999999999999999 1 b e\n"])
def test_garbage_pid_file_is_not_running(fake: FakeApi, content: str) -> None:
    fake.agent.pid_file().write_text(content)
    run = fake.agent("monitor")
    assert run.rc == 7, run
    assert fake.agent("stop").rc == 0


def test_symlinked_pid_file_is_never_followed(fake: FakeApi) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    target = fake.workdir / "elsewhere"
    target.write_text("precious\n")
    try:
        fake.agent.pid_file().symlink_to(target)
        run = fake.agent("monitor")
        assert run.rc == 7
        assert "symbolic link" in run.stderr
        assert fake.agent("stop").rc == 0
        assert target.read_text() == "precious\n"
        assert bystander.poll() is None
        started = fake.agent("start")
        assert started.rc == 0, started
        assert not fake.agent.pid_file().is_symlink()
        assert target.read_text() == "precious\n"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.nobody
def test_daemon_runs_as_user_with_a_clean_environment(fake: FakeApi) -> None:
    fake.agent.params["user"] = "nobody"
    fake.agent.params["console_log"] = str(fake.workdir / "console.log")
    run = fake.agent("start")
    assert run.rc == 0, run
    status = Path(f"/proc/{fake.pid()}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["65534"] * 4
    environ = Path(f"/proc/{fake.pid()}/environ").read_bytes()
    assert PASSWORD.encode() not in environ
    assert b"OCF_RESKEY" not in environ
    assert os.getsid(fake.pid()) == fake.pid(), "the daemon leads a session of its own"
    assert "uid 65534" in (fake.workdir / "console.log").read_text()


def test_secrets_appear_in_no_output(fake: FakeApi) -> None:
    fake.keystone.mode = "reject401"
    outputs = [fake.agent(action) for action in ("validate-all", "start", "monitor", "stop")]
    fake.keystone.mode = "ok"
    outputs += [fake.agent(action) for action in ("start", "monitor", "stop")]
    for run in outputs:
        assert PASSWORD not in run.stderr + run.stdout
        assert "fake-token-" not in run.stderr + run.stdout


def test_ha_guide_parameters_validate_and_map_to_keystone_v3(fake: FakeApi) -> None:
    # The OpenStack HA guide's crm primitive, as written (keystone_get_token_url empty).
    for name in ("os_auth_url", "os_project_name"):
        fake.agent.params.pop(name)
    fake.agent.params.update(os_tenant_name="admin", keystone_get_token_url="", url="http://127.0.0.1/v1/")
    fake.agent.params["url"] = f"{fake.url}/v1/"
    assert fake.agent("validate-all").rc == 0
    run = fake.agent("start")
    assert run.rc == 0, run
    assert "os_tenant_name is deprecated" in run.stderr
    scope = fake.keystone.last_body["auth"]["scope"]["project"]  # type: ignore[index]
    assert scope["name"] == "admin"
    # A v2 token URL is mapped to the same Keystone's v3.
    fake.agent.params["keystone_get_token_url"] = fake.keystone.url.replace("/v3", "/v2.0/tokens")
    (fake.rsctmp / "cinder-ocf-p_cinder-api.token").unlink()
    before = fake.keystone.token_requests
    assert fake.agent("monitor").rc == 0
    assert fake.keystone.token_requests == before + 1


def test_credentials_default_to_cinder_conf(fake: FakeApi) -> None:
    for name in ("os_auth_url", "os_username", "os_password", "os_project_name"):
        fake.agent.params.pop(name)
    assert fake.agent("start").rc == 0
    password = fake.keystone.last_body["auth"]["identity"]["password"]["user"]  # type: ignore[index]
    assert password["name"] == "cinder"


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"binary": "/nonexistent/cinder-api"}, 5, "not found"),
        ({"binary": "cinder-api-not-in-path"}, 5, "not found"),
        ({"config": "/nonexistent/cinder.conf"}, 5, "does not exist"),
        ({"user": "no-such-user-cinder-ocf"}, 5, "does not exist"),
        ({"check_timeout": "soon"}, 6, "check_timeout"),
        ({"check_timeout": "0"}, 6, "at least 1"),
        ({"insecure": "maybe"}, 6, "insecure"),
        ({"additional_parameters": "--debug 'unbalanced"}, 6, "additional_parameters"),
        ({"os_password": ""}, 6, "incomplete monitoring credentials"),
        ({"url": "ftp://127.0.0.1/"}, 6, "url"),
        ({"pid": "relative.pid"}, 6, "absolute"),
    ],
)
def test_validate_all_names_the_problem(fake: FakeApi, params: dict, code: int, fragment: str) -> None:
    fake.agent.params.update(params)
    run = fake.agent("validate-all")
    assert run.rc == code, run
    assert fragment in run.reason
    assert fake.agent("stop").rc == 0, "stop works whatever validation says"
    assert fake.agent("monitor", interval_s=0).rc == 7


def test_malformed_config_is_not_configured(fake: FakeApi) -> None:
    fake.config.write_text("[DEFAULT]\nosapi_volume_listen_port = many\n")
    run = fake.agent("validate-all")
    assert run.rc == 6, run
    fake.config.write_text("this is not an ini file\n")
    assert fake.agent("validate-all").rc == 6


def test_unknown_and_missing_actions(fake: FakeApi) -> None:
    # The executable's own command line, as Pacemaker and an operator call it.
    assert fake.agent("promote", runner="exec").rc == 3
    assert fake.agent("", argv=[str(fake.agent.path)], runner="exec").rc == 2
    assert fake.agent("usage", runner="exec").rc == 0


def test_something_else_on_the_port_is_not_taken_for_ours(fake: FakeApi) -> None:
    squatter = subprocess.Popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", str(fake.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(
            lambda: (
                subprocess.run(
                    ["ss", "-ltnH", f"sport = :{fake.port}"], capture_output=True, text=True
                ).stdout.strip()
                != ""
            ),
            5,
        )
        run = fake.agent("start")
        assert run.rc == 1
        assert "already answers" in run.reason
        assert fake.agent("monitor").rc == 7
    finally:
        squatter.kill()
        squatter.wait()


def test_daemon_output_goes_to_the_console_log_it_names(fake: FakeApi) -> None:
    run = fake.agent("start")
    assert run.rc == 0, run
    named = run.stderr.split("(output: ", 1)[1].split(")", 1)[0]
    assert "fake cinder-api starting" in Path(named).read_text()


@pytest.mark.nobody
def test_ocf_tester_passes(fake: FakeApi) -> None:
    # Credentials come from cinder.conf: ocf-tester would put a password on its command line.
    options = {name: fake.agent.params[name] for name in ("binary", "config", "user", "check_timeout")}
    run = ocf_tester(fake.agent.path, "p_cinder-api", options, fake.rsctmp, timeout=300)
    assert "passed all tests" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0
