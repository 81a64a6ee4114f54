"""The agents this package provides, by OCF type name, and the entry point of their executables.

Exports: AGENTS, agent_class, main.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Dict, Type

    from cinder_ocf.daemon import DaemonAgent

# OCF type name -> "module:class"; a module is imported only for the agent that runs.
AGENTS: Dict[str, str] = {
    "cinder-api": "cinder_ocf.agents.api:ApiAgent",
    "cinder-volume": "cinder_ocf.agents.volume:VolumeAgent",
    "cinder-scheduler": "cinder_ocf.agents.scheduler:SchedulerAgent",
    "cinder-schedule": "cinder_ocf.agents.scheduler:ScheduleAgent",  # the 2013 agent's name
    "cinder-backup": "cinder_ocf.agents.backup:BackupAgent",
}


def agent_class(name: str) -> Type[DaemonAgent]:
    module, _, cls = AGENTS[name].partition(":")
    # __import__, not importlib.import_module: importlib's import costs a monitor ~0.5 ms.
    return getattr(__import__(module, fromlist=[cls]), cls)


def main(name: str) -> None:
    """Run one agent as Pacemaker calls it and exit with its OCF code."""
    from cinder_ocf.dispatch import run  # noqa: PLC0415

    sys.exit(run(agent_class(name), sys.argv, os.environ))
