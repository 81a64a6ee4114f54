"""Only the agent writes exit reasons and log lines, whatever text reaches it from outside.

Pacemaker takes the last `ocf-exit-reason:` line of stderr, and an operator reads HA_LOGFILE
line by line.  hypothesis draws text full of newlines, carriage returns, terminal escapes,
other control characters and the marker itself, and puts it where the outside world puts text:
parameter values (from the CIB) and the daemon's own output (quoted when it dies in start).
Every line the agent writes must still be its own, printable, with at most one exit reason.
"""

from pathlib import Path
from typing import Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.resource import AgentRun
from tests.unit.resources import Resource

MARKER = "ocf-exit-reason:"
PIECES = ["\n", "\r\n", "\r", MARKER, "ocf-exit-reason: forged\n", "\x1b[31m", "\x1b]0;title\x07",
          "\x1b[2J", "\x07", "\x08", "\t", "\x0b", "\x0c", "\x7f", "\u2028", "\u0085", "%s", "{0}", " ", "ü",
          "ok"]  # fmt: skip
# Env values: any text but NUL (execve cannot carry it) and lone surrogates (not encodable).
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
HOSTILE_TEXT = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(CHARS, max_size=8)), min_size=1, max_size=12
).map("".join)


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def assert_one_voice(res: Resource, run: AgentRun, logfile: Path) -> None:
    where = repr(run)
    tag = f"{res.name}(p_{res.name})["
    lines = run.stderr.splitlines()
    assert sum(line.startswith(MARKER) for line in lines) <= 1, where
    for line in lines:
        assert line.startswith((tag, MARKER)), where
        assert line.isprintable(), where
    if logfile.exists():
        for line in logfile.read_text(encoding="utf-8", errors="replace").splitlines():
            assert line.isprintable() and f" {tag}" in line[:80], repr(line)
            assert MARKER not in line, repr(line)
        logfile.unlink()


@pytest.fixture(scope="module", params=["cinder-api", "cinder-scheduler"])
def resource(agents_dir: Path, request: pytest.FixtureRequest) -> Iterator[Resource]:
    res = Resource(agents_dir, request.param)
    yield res
    res.close()


@examples(40)
@given(text=HOSTILE_TEXT, where=st.sampled_from(["binary", "config", "additional_parameters", "url", "user"]))
def test_parameter_values_cannot_forge_lines(resource: Resource, text: str, where: str) -> None:
    res = resource
    logfile = res.workdir / "ha.log"
    res.reset()
    params = dict(res.agent.params)
    res.agent.params[where] = f"/nonexistent/{text}" if where in ("binary", "config") else text
    try:
        run = res.run("validate-all", timeout_s=10, extra_env={"HA_LOGFILE": str(logfile)})
    finally:
        res.agent.params = params
    assert run.rc in (0, 1, 4, 5, 6), run
    if run.rc:
        assert run.reason.strip(), run
    assert_one_voice(res, run, logfile)


def escaped(text: str) -> str:
    """text as the fake daemons read it from their ini file (Python escapes, % doubled)."""
    return text.encode("unicode_escape").decode("ascii").replace("%", "%%")


@examples(15)
@given(text=HOSTILE_TEXT)
def test_daemon_output_cannot_forge_the_reason(resource: Resource, text: str) -> None:
    res = resource
    logfile = res.workdir / "ha.log"
    res.reset()
    if res.api:
        res.configure(mode="die", die_output=escaped(text))
    else:
        res.configure(die="yes", die_output=escaped(text))
    try:
        run = res.run("start", timeout_s=10, extra_env={"HA_LOGFILE": str(logfile)})
    finally:
        res.configure()
        stopped: List[AgentRun] = [res.run("stop")]
    assert run.rc == 1 and "during start" in run.reason, run
    assert stopped[0].rc == 0, stopped
    assert_one_voice(res, run, logfile)


def test_the_hostile_text_reaches_the_agent(agents_dir: Path) -> None:
    """The property above is not vacuous: the daemon's raw output does hold the marker and
    control characters, which the agent's reason has folded away."""
    res = Resource(agents_dir, "cinder-api")
    console = res.workdir / "console.log"
    res.agent.params["console_log"] = str(console)
    try:
        res.configure(mode="die", die_output=escaped("said\nocf-exit-reason:forged\x1b[31m"))
        run = res.run("start", timeout_s=10)
        assert "\nocf-exit-reason:forged\x1b[31m" in console.read_text()
        assert run.rc == 1 and "| said | ocf-exit-reason forged [31m" in run.reason, run
        assert "ocf-exit-reason:forged" not in run.stderr and "\x1b" not in run.stderr, run
    finally:
        res.run("stop")
        res.close()
