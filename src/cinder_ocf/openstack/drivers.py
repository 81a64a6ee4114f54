"""Whether cinder-volume's drivers may serve a cluster (active/active): each driver class's
SUPPORTS_ACTIVE_ACTIVE, read as cinder-volume reads it (cinder/volume/manager.py refuses a
clustered backend whose driver lacks it, once the daemon runs).

Exports: Support, active_active_support.

The classes are imported by cinder's own interpreter (the binary's #! line) in a child process,
as the daemon's user: cinder is not importable from the agent's interpreter, and importing a
driver runs the driver's code.  That costs ~1.2 s (cinder's imports), so the answer is kept in
HA_RSCTMP under the binary's identity and the driver paths.  Not a list of drivers kept here:
every cinder release and every out-of-tree driver declares it on its class, a list goes stale.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from cinder_ocf import trusted

if TYPE_CHECKING:
    from cinder_ocf.supervisor.daemon import DaemonUser

_MARK = "cinder-ocf-driver-support:"
# Run by cinder's interpreter: what cinder-volume does before loading a driver (register the
# versioned objects its modules annotate with), then each class's attribute, or why not.
_PROBE = f"""
import importlib, json, sys
try:
    from cinder import objects
    objects.register_all()
except ImportError:
    pass
answers = {{}}
for path in sys.argv[1:]:
    module, _, name = path.rpartition(".")
    try:
        driver = getattr(importlib.import_module(module), name)
        answers[path] = bool(getattr(driver, "SUPPORTS_ACTIVE_ACTIVE", False))
    except BaseException as err:
        answers[path] = (type(err).__name__ + ": " + str(err)).splitlines()[0][:300]
print({_MARK!r} + json.dumps(answers), flush=True)
"""


class Support(NamedTuple):
    """Per driver path: True or False (its class's SUPPORTS_ACTIVE_ACTIVE), or why its class
    could not be imported; unknown says why nothing could be asked at all."""

    answers: dict[str, bool | str]
    unknown: str = ""


def _interpreter(binary: str) -> list[str] | None:
    """The #! line of binary as argv (RHEL's `#!/usr/bin/python3 -s` keeps its flag), or None
    for a binary that is not a script."""
    try:
        with open(binary, "rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    # The kernel passes what follows the interpreter as one argument.
    command, _, argument = first[2:].decode(errors="replace").strip().partition(" ")
    return [command, argument.strip()] if argument.strip() else [command]


def active_active_support(
    binary: str, drivers: Sequence[str], user: DaemonUser, cache_path: str, timeout: float
) -> Support:
    """Each driver's SUPPORTS_ACTIVE_ACTIVE as binary's interpreter imports it."""
    argv = _interpreter(binary)
    if argv is None:
        return Support({}, f"{binary} is not a script whose interpreter can be asked")
    try:
        stat = os.stat(binary)
    except OSError as err:
        return Support({}, f"cannot read {binary}: {err.strerror}")
    key = shlex.join([*argv, binary, str(stat.st_mtime_ns), str(stat.st_size), *sorted(drivers)])
    record = trusted.read_json(cache_path) or {}
    if record.get("key") == key and isinstance(record.get("answers"), dict):
        return Support(record["answers"])
    root = os.geteuid() == 0  # else the agent already runs as the daemon's user
    try:
        done = subprocess.run(
            [*argv, "-c", _PROBE, *drivers], capture_output=True, text=True, timeout=timeout,
            cwd="/", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": user.home or "/"},
            check=False, user=user.uid if root else None, group=user.gid if root else None,
            extra_groups=list(user.groups) if root else None,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Support({}, f"importing the drivers with {argv[0]} took longer than {timeout:.0f} s")
    except OSError as err:
        return Support({}, f"cannot run {argv[0]}: {err.strerror}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    try:
        answers = json.loads(lines[-1][len(_MARK) :]) if lines else None
    except ValueError:
        answers = None
    if not isinstance(answers, dict):
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Support({}, f"{argv[0]} could not import the drivers: {last[:300]}")
    if all(isinstance(answer, bool) for answer in answers.values()):  # a missing one may come
        try:
            trusted.write_json(cache_path, {"key": key, "answers": answers})
        except OSError:
            pass  # asked again next time: slower, not wrong
    return Support(answers)
