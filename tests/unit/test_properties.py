"""Whatever Pacemaker (or an operator's typo) puts in the environment, an agent answers with a
valid OCF exit code and at most a one-line reason: never a traceback, never an internal error.

hypothesis draws the action, the parameters (known names and others, hostile and random
values), the op timeout and interval, OCF_CHECK_LEVEL, HA_debug and HA_RSCTMP.  Paths the
agent could write to stay inside the test's directory, and the binary is a program that exits
at once or none at all, so that nothing is left running and no file lands elsewhere.
"""

import os
import string
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cinder_ocf.agents import service
from lab.host import open_dir
from lab.resource import Agent
from tests.unit.resources import AGENT_NAMES

ACTIONS = ["start", "stop", "monitor", "status", "validate-all", "meta-data", "usage", "", "promote",
           "reload", "--help", "monitor;id", "stärt"]  # fmt: skip
HOSTILE = ["", " ", "0", "-1", "1e3", "99999999999999999999", "yes", "maybe", "$(id)", "`id`", "a;b|c&d",
           "../../etc/passwd", "http://[::1", "http://127.0.0.1:1/", "https://127.0.0.1:1", "ftp://x/",
           "rabbit://u:p@h:99999/", "'unbalanced", "\"", "\\", "\n", "\r\nX: y", "ü" * 50, "\U0001f4a5",
           "%s%n%x", "{0}", "${HA_RSCTMP}", "x" * 5000]  # fmt: skip
# Env values: any text but NUL (execve cannot carry it) and lone surrogates (not encodable).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
VALUE = st.one_of(st.sampled_from(HOSTILE), TEXT)
NUMBERISH = st.one_of(
    st.sampled_from(["", "0", "-5", "1", "100", "20000", "abc", "1.5", "99999999999"]), TEXT
)


class Site:
    """One agent's files: a binary that exits at once, a config, HA_RSCTMP variants."""

    def __init__(self, agents_dir: Path, name: str) -> None:
        self.name = name
        self.workdir = open_dir("cinder-ocf-props-")
        self.binary = self.workdir / "exits-at-once"
        self.binary.write_text("#!/bin/sh\necho 'ERROR: fake failure' >&2\nexit 3\n")
        self.binary.chmod(0o755)
        self.config = self.workdir / "cinder.conf"
        self.config.write_text("[DEFAULT]\nenabled_backends = b1\ntransport_url = rabbit://127.0.0.1:1/\n")
        self.garbage = self.workdir / "garbage.conf"
        self.garbage.write_bytes(b"\xff\xfe no section\n")
        self.rsctmp = self.workdir / "rsctmp"
        self.rsctmp.mkdir(mode=0o755)
        self.not_a_dir = self.workdir / "a-file"
        self.not_a_dir.write_text("")
        # In this process (lab/inprocess.py): what is drawn is the environment dispatch reads,
        # not the interpreter's, and the binary it may start exits at once; the executable's
        # own start is tested elsewhere.
        self.agent = Agent(agents_dir / name, self.rsctmp, f"p_{name}", {}, runner="inprocess")
        self.names = [p.name for p in service(name).spec.parameters]

    def close(self) -> None:
        subprocess.run(["rm", "-rf", str(self.workdir)], check=True)


@pytest.fixture(scope="module")
def sites(agents_dir: Path) -> Iterator[Dict[str, Site]]:
    made = {name: Site(agents_dir, name) for name in AGENT_NAMES}
    yield made
    for site in made.values():
        site.close()


@st.composite
def environments(draw: st.DrawFn, site: Site) -> Dict[str, str]:
    inside = str(site.workdir)
    paths = st.sampled_from(["", "relative", f"{inside}/x.pid", f"{inside}/no/such/dir/x",
                             f"{inside}/a-file/x", f"{inside}/$(id);`id`", f"{inside}/rsctmp"])  # fmt: skip
    chosen = {
        "binary": draw(st.sampled_from([str(site.binary), "/nonexistent/cinder", "", str(site.workdir)])),
        "config": draw(st.sampled_from([str(site.config), str(site.garbage), "/nonexistent", "", inside])),
        "user": draw(st.sampled_from(["root", "nobody", "", "no-such-user", "root;id"])),
        "pid": draw(paths),
        "console_log": draw(paths),
    }
    params = {k: v for k, v in chosen.items() if draw(st.booleans())}
    # Every other parameter the agent declares, and some it does not, with any value.
    others = [n for n in site.names if n not in chosen] + ["no_such_parameter", "CRM_meta_notify"]
    for name in draw(st.lists(st.sampled_from(others), max_size=8, unique=True)):
        params[name] = draw(VALUE)
    env = {f"OCF_RESKEY_{k}": v for k, v in params.items()}
    env["OCF_RESKEY_CRM_meta_timeout"] = draw(st.sampled_from(["", "1", "2000", "5000", "soon", "-1"]))
    env["OCF_RESKEY_CRM_meta_interval"] = draw(NUMBERISH)
    env["OCF_CHECK_LEVEL"] = draw(NUMBERISH)
    env["HA_debug"] = draw(st.sampled_from(["", "0", "1", "yes"]))
    env["HA_RSCTMP"] = draw(st.sampled_from([str(site.rsctmp), f"{inside}/missing", str(site.not_a_dir)]))
    env["OCF_RESOURCE_INSTANCE"] = draw(st.one_of(st.just(f"p_{site.name}"), TEXT.filter(bool)))
    return env


ACTION = st.one_of(st.sampled_from(ACTIONS), st.text(string.ascii_letters + "-;$ ", max_size=12))


def check_answer(site: Site, action: str, env: Dict[str, str]) -> None:
    # The monitor's environment for 5 s, then what was drawn (a timeout and an interval always).
    proc = site.agent("monitor", timeout_s=5.0, extra_env=env, argv=[str(site.agent.path), action],
                      cwd=str(site.workdir), kill_after_s=30)  # fmt: skip
    where = f"action {action!r}, env {env!r}: rc {proc.rc}, stderr {proc.stderr[-2000:]!r}"
    assert 0 <= proc.rc <= 7, where
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, where
    reasons = [line for line in proc.stderr.splitlines() if line.startswith("ocf-exit-reason:")]
    assert len(reasons) <= 1, where
    if proc.rc in (1, 4, 5, 6) and action in ("start", "stop", "monitor", "status", "validate-all"):
        assert len(reasons) == 1 and reasons[0][len("ocf-exit-reason:") :].strip(), where
    if action not in ("meta-data", "usage", "--help"):
        assert proc.stdout == "", where
    # The binary exits at once: nothing the agent started may outlive it.
    assert not running_with(str(site.binary)), where


def running_with(word: str) -> List[int]:
    """The processes whose command line holds word (pgrep -f's test, without a pgrep process
    per example)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if word.encode() in cmdline.replace(b"\0", b" "):
                found.append(int(name))
    return found


@pytest.mark.parametrize("name", AGENT_NAMES)
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_any_environment_gets_a_valid_answer(sites: Dict[str, Site], name: str, data: st.DataObject) -> None:
    site = sites[name]
    check_answer(site, data.draw(ACTION, label="action"), data.draw(environments(site), label="env"))
