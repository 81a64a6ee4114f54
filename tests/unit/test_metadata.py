"""Meta-data as Pacemaker's tools read it, and parameters as Pacemaker passes them."""

import io
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cinder_ocf.agents import AGENTS, service
from cinder_ocf.cli import agent_script, parameter_reference
from cinder_ocf.log import Logger
from cinder_ocf.metadata import AgentSpec, Parameter, parse_params, render_metadata
from cinder_ocf.ocf import Environment, OcfError
from tests.conftest import ROOT

DTD_DIR = "/usr/share/resource-agents"
OCF_1_1_RNG = "/usr/share/pcs/data/ocf-1.1.rng"  # the schema pcs checks meta-data with
OCF_1_1_ENV = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
# The 2013 agents' names, each with what replaces it (a parameter, or "" for cinder.conf).
DEPRECATED = {"os_tenant_name": "os_project_name", "keystone_get_token_url": "os_auth_url",
              "amqp_server_port": "", "multibackend": ""}  # fmt: skip
# The parameters a change of which must restart the daemon: every other one only configures
# the checks, and OCF 1.1's reload-agent applies it.
RESTARTING = {"binary", "config", "user", "pid", "console_log", "additional_parameters"}


@pytest.mark.nobody
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_metadata_is_valid_against_ra_api_dtd(agents_dir: Path, name: str) -> None:
    # ocf-tester runs meta-data as nobody: the interpreter and library must be usable by it.
    xml = subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", f"{agents_dir / name} meta-data"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lint = subprocess.run(
        ["xmllint", "--noout", "--valid", "-"], input=xml, cwd=DTD_DIR, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stderr
    assert f'<resource-agent name="{name}"' in xml


def _metadata(agents_dir: Path, name: str, environ: dict) -> str:
    """meta-data as Pacemaker's tools ask for it, in an environment of only these variables."""
    return subprocess.run(
        [str(agents_dir / name), "meta-data"], env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_pacemaker_that_speaks_ocf_1_1_gets_valid_1_1_meta_data(agents_dir: Path, name: str) -> None:
    xml = _metadata(agents_dir, name, OCF_1_1_ENV)
    lint = subprocess.run(
        ["xmllint", "--noout", "--relaxng", OCF_1_1_RNG, "-"], input=xml, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stderr
    # 1.1 markup fails the 1.0 DTD: the dialect must follow the version, both ways.
    dtd = subprocess.run(
        ["xmllint", "--noout", "--valid", "-"], input=xml, cwd=DTD_DIR, capture_output=True, text=True
    )
    assert dtd.returncode != 0
    root = ET.fromstring(xml)
    assert root.findtext("version") == "1.1"
    actions = root.find("actions")
    assert actions is not None
    assert [a.get("timeout") for a in actions.iter("action") if a.get("name") == "reload-agent"] == ["20s"]
    for param in root.iter("parameter"):
        shown = param.get("name")
        reloadable = param.get("reloadable") == "1"
        assert reloadable is (shown not in RESTARTING), shown
        deprecated = param.find("deprecated")
        assert (deprecated is not None) is (shown in DEPRECATED), shown
        if deprecated is not None:
            replaced = [r.get("name") for r in deprecated.iter("replaced-with")]
            assert replaced == ([DEPRECATED[shown]] if DEPRECATED[shown] else []), shown
            assert replaced or deprecated.findtext("desc"), f"{shown}: deprecated without saying why"


@pytest.mark.parametrize("environ", [{}, {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "0"},
                                     {"OCF_RA_VERSION_MAJOR": "x"}])  # fmt: skip
def test_callers_that_speak_1_0_or_nothing_get_the_1_0_meta_data(agents_dir: Path, environ: dict) -> None:
    xml = _metadata(agents_dir, "cinder-volume", environ)
    assert xml == _metadata(agents_dir, "cinder-volume", {})
    assert "<version>1.0</version>" in xml
    for markup in ("reloadable", "<deprecated", "reload-agent", 'depth="20"'):
        assert markup not in xml


DEEP_AGENTS = {"cinder-api": True, "cinder-volume": True, "cinder-scheduler": True, "cinder-backup": False}


@pytest.mark.parametrize(("name", "deep"), sorted(DEEP_AGENTS.items()))
def test_the_deep_monitor_is_a_second_monitor_at_depth_20(agents_dir: Path, name: str, deep: bool) -> None:
    root = ET.fromstring(_metadata(agents_dir, name, OCF_1_1_ENV))
    actions = root.iter("action")
    monitors = [(a.get("interval"), a.get("depth")) for a in actions if a.get("name") == "monitor"]
    assert monitors == ([("10s", "0"), ("60s", "20")] if deep else [("10s", "0")])


def test_metadata_escapes_every_text() -> None:
    spec = AgentSpec(
        "x", "1.0", 'short <&> "q"', "long & <b>", (Parameter("p", "s<", "l>&", default='a"b'),), ()
    )
    for version in ((1, 0), (1, 1)):
        xml = render_metadata(spec, version)
        assert "short &lt;&amp;&gt; &quot;q&quot;" in xml
        assert 'default="a&quot;b"' in xml
        assert "<b>" not in xml


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_shipped_executables_are_what_install_agents_writes(name: str) -> None:
    assert (ROOT / "ocf" / name).read_text() == agent_script(name, "/usr/bin/python3")


def _parse(environ: dict, strict: bool) -> tuple:
    stream = io.StringIO()
    log = Logger("t", environ, stream=stream)
    spec = service("cinder-api").spec
    values = parse_params(spec, Environment("start", environ), log, strict)
    return values, stream.getvalue()


def test_defaults_expand_rsctmp_and_instance() -> None:
    values, _ = _parse({"HA_RSCTMP": "/run/ra", "OCF_RESOURCE_INSTANCE": "api:0"}, strict=True)
    assert values.text("pid") == "/run/ra/api:0.pid"
    assert values.integer("check_timeout") == 10
    assert values.flag("insecure") is False


def test_bad_values_fail_strictly_and_fall_back_otherwise() -> None:
    env = {"OCF_RESKEY_check_timeout": "ten", "OCF_RESKEY_insecure": "perhaps"}
    with pytest.raises(OcfError) as err:
        _parse(env, strict=True)
    assert err.value.code == 6
    values, logged = _parse(env, strict=False)
    assert values.integer("check_timeout") == 10
    assert "using the default" in logged


def test_deprecated_names_feed_the_new_ones_with_one_notice() -> None:
    values, logged = _parse({"OCF_RESKEY_os_tenant_name": "admin"}, strict=True)
    assert values.text("os_project_name") == "admin"
    assert logged.count("os_tenant_name is deprecated") == 1
    values, _ = _parse({"OCF_RESKEY_os_tenant_name": "old", "OCF_RESKEY_os_project_name": "new"}, strict=True)
    assert values.text("os_project_name") == "new"


def test_secret_parameters_are_redacted_from_every_log_line() -> None:
    stream = io.StringIO()
    environ = {"OCF_RESKEY_os_password": "hunter2-very-secret"}
    log = Logger("t", environ, stream=stream)
    parse_params(service("cinder-api").spec, Environment("start", environ), log, strict=True)
    log.error("auth with hunter2-very-secret failed")
    log.exit_reason("hunter2-very-secret\nsecond line")
    assert "hunter2" not in stream.getvalue()
    assert "ocf-exit-reason:**** second line\n" in stream.getvalue()


@pytest.mark.parametrize(("value", "enabled"), [("0", False), ("", False), ("1", True), ("yes", True)])
def test_ha_debug_follows_ocf_shellfuncs(value: str, enabled: bool) -> None:
    stream = io.StringIO()
    Logger("t", {"HA_debug": value}, stream=stream).debug("details")
    assert ("details" in stream.getvalue()) is enabled


def test_ha_logfile_and_debuglog(tmp_path: Path) -> None:
    logfile, debuglog = tmp_path / "ha.log", tmp_path / "debug.log"
    environ = {"HA_LOGFILE": str(logfile), "HA_DEBUGLOG": str(debuglog), "HA_debug": "1"}
    stream = io.StringIO()
    log = Logger("cinder-api(p)", environ, stream=stream)
    log.info("an info")
    log.debug("a debug")
    assert "cinder-api(p)" in logfile.read_text() and "INFO: an info" in logfile.read_text()
    assert "DEBUG: a debug" in debuglog.read_text()
    assert stream.getvalue() == ""


def test_readme_parameter_reference_is_generated_from_meta_data() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- parameter-reference:start -->\n", 1)[1].split(
        "<!-- parameter-reference:end -->"
    )[0]
    expected = "\n".join(parameter_reference(name) for name in sorted(AGENTS))
    assert block == expected, "run `make readme` to regenerate the README's parameter reference"
