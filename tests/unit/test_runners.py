"""The unit tests' ways to run an agent answer as its executable does.

Most unit tests run an action in a fork of the test (lab/forked.py) or in the test itself
(lab/inprocess.py) instead of the installed executable; these cases hold the three to the same
exit code, stdout and stderr (the log lines' pid aside) for what needs no daemon.
"""

import os
import re
import shutil
from pathlib import Path
from typing import Dict, Iterator

import pytest

from lab.host import open_dir
from lab.resource import RUNNERS, Agent, AgentRun

CASES = {
    "meta-data": {},
    "usage": {},
    "promote": {},
    "monitor": {},  # no pid file: not running, with an exit reason
    "validate-all": {"binary": "/nonexistent/cinder", "check_timeout": "soon"},
}


@pytest.fixture(scope="module")
def rsctmp() -> Iterator[Path]:
    directory = open_dir("cinder-ocf-runners-")
    yield directory
    shutil.rmtree(directory)


def without_pids(text: str) -> str:
    return re.sub(r"\)\[\d+\]: ", ")[PID]: ", text)


@pytest.mark.parametrize("name", ["cinder-api", "cinder-volume"])
def test_every_runner_answers_as_the_executable(agents_dir: Path, rsctmp: Path, name: str) -> None:
    for action, params in CASES.items():
        answers: Dict[str, AgentRun] = {}
        for runner in RUNNERS:
            agent = Agent(agents_dir / name, rsctmp, f"p_{name}", params, runner=runner)
            answers[runner] = agent(action, extra_env={"HA_debug": "1"})
        done = answers["exec"]
        assert done.stdout or done.stderr, (action, done)
        for runner, run in answers.items():
            assert run.rc == done.rc, (action, runner, run, done)
            assert run.stdout == done.stdout, (action, runner)
            assert without_pids(run.stderr) == without_pids(done.stderr), (action, runner, run, done)


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_the_agent_sees_the_actions_environment_only(agents_dir: Path, rsctmp: Path, runner: str) -> None:
    """A variable of the test's own environment does not reach the agent; a fork logs its own pid."""
    agent = Agent(agents_dir / "cinder-api", rsctmp, "p_x", {}, runner=runner)
    name = "OCF_RESKEY_binary"  # as Pacemaker spells the parameter
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(name, "/nonexistent/from-the-test")
        run = agent("validate-all")
        assert os.environ[name] == "/nonexistent/from-the-test", "put back after"
    assert run.rc == 5 and "cinder-api not found or not executable in PATH" in run.reason, run
    assert "from-the-test" not in run.stderr, run
    pids = {int(pid) for pid in re.findall(r"\)\[(\d+)\]: ", run.stderr)}
    assert pids == ({os.getpid()} if runner == "inprocess" else pids - {os.getpid()}) and pids, run
