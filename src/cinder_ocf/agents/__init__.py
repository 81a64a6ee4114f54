"""The agents this package provides, by OCF type name, and the entry point of their executables.

Exports: AGENTS, service, main.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cinder_ocf.agents.base import Service

# OCF type name -> "module:attribute"; a module is imported only for the agent that runs.
AGENTS: dict[str, str] = {
    "cinder-api": "cinder_ocf.agents.api:SERVICE",
    "cinder-volume": "cinder_ocf.agents.volume:SERVICE",
    "cinder-scheduler": "cinder_ocf.agents.scheduler:SERVICE",
    "cinder-schedule": "cinder_ocf.agents.scheduler:ALIAS_SERVICE",  # the 2013 agent's name
    "cinder-backup": "cinder_ocf.agents.backup:SERVICE",
}


def service(name: str) -> Service:
    module, _, attribute = AGENTS[name].partition(":")
    found: Service = getattr(importlib.import_module(module), attribute)
    return found


def main(name: str) -> None:
    """Run one agent as Pacemaker calls it and exit with its OCF code."""
    from cinder_ocf.dispatch import run  # noqa: PLC0415 - dispatch imports agents.base: a cycle at the top

    sys.exit(run(service(name), sys.argv, os.environ, fresh_process=True))
