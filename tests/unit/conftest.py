"""A cinder-api resource whose daemon and Keystone misbehave on demand (tests/fakes), and `res`:
one Resource (tests/unit/resources.py) of each agent in turn."""

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from lab.host import open_dir, process_state
from lab.resource import Agent, stop_resource
from tests.conftest import ROOT, free_port
from tests.fakes.keystone import FakeKeystone
from tests.unit.resources import AGENT_NAMES, Resource

PASSWORD = "Pa55-unit-s3cret-value"


@pytest.fixture(params=AGENT_NAMES)
def res(request: pytest.FixtureRequest, agents_dir: Path) -> Iterator[Resource]:
    resource = Resource(agents_dir, request.param)
    try:
        yield resource
    finally:
        resource.close()


class FakeApi:
    """The resource under test: the agent, a fake daemon's config, a fake Keystone."""

    def __init__(self, workdir: Path, agent_path: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tokens_file = workdir / "tokens"
        self.tokens_file.touch()
        self.tokens_file.chmod(0o644)
        self.keystone = FakeKeystone(self.tokens_file)
        self.binary = workdir / "fake-cinder-api"
        source = (ROOT / "tests/fakes/fake_cinder_api.py").read_text()
        self.binary.write_text(f"#!{sys.executable}\n" + source)
        self.binary.chmod(0o755)
        self.config = workdir / "cinder.conf"
        self.rsctmp = workdir / "rsctmp"
        self.rsctmp.mkdir(mode=0o755)
        self.configure()
        self.agent = Agent(
            agent_path,
            self.rsctmp,
            "p_cinder-api",
            {
                "binary": str(self.binary),
                "config": str(self.config),
                "user": "root",
                "os_username": "monitor",
                "os_password": PASSWORD,
                "os_project_name": "admin",
                "os_auth_url": self.keystone.url,
                "check_timeout": "3",
            },
            runner="fork",
        )

    def configure(self, **fake: str) -> None:
        fake.setdefault("tokens_file", str(self.tokens_file))
        lines = [
            "[DEFAULT]",
            "osapi_volume_listen = 127.0.0.1",
            f"osapi_volume_listen_port = {self.port}",
            "[keystone_authtoken]",
            f"auth_url = {self.keystone.url.rsplit('/v3', 1)[0]}/",
            "username = cinder",
            "password = conf-s3cret-password",
            "project_name = service",
            "[fake]",
            *(f"{k} = {v}" for k, v in fake.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o644)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int:
        return self.agent.pid()


@pytest.fixture
def fake(agents_dir: Path) -> Iterator[FakeApi]:
    workdir = open_dir("cinder-ocf-unit-")
    api = FakeApi(workdir, agents_dir / "cinder-api")
    try:
        yield api
    finally:
        stop = stop_resource(api.agent, timeout_s=15, grace_s=5)
        api.keystone.close()
        if stop.leader is not None:
            # Nothing of the daemon's session may outlive the test.
            assert not stop.left, stop.left
            assert process_state(stop.leader) is None
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
        assert stop.run.rc == 0, stop.run
