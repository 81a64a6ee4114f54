"""What the logs said while a cluster scenario failed, for the test's report.

CI keeps a failed run's output and nothing of its machine: the lines that explain a failure
(the agents' exit reasons, the services' warnings and errors, PostgreSQL's lock waits) must
be in that output.  Each source is read from the scenario's start on, and cut to its last lines.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, List, Optional

TAIL = 40  # lines per source: the end of a scenario is where it failed

# A cinder log line: "2026-12-08 02:48:52.350 142 WARNING cinder.x [...] text", local time.
_CINDER = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \d+ (WARNING|ERROR|CRITICAL) ")
# PostgreSQL: "2026-12-08 02:48:14.243 UTC [31019] LOG:  process 5 still waiting for ...".
_POSTGRES = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[\d+\] (\w+): ")
_POSTGRES_ROUTINE = ("checkpoint", "database system", "listening", "starting")
# Pacemaker's detail log: "Dec 08 02:51:18.745 node1 pacemaker-controld  [38] (...) notice: ...".
_PACEMAKER = re.compile(r"^(\w{3} \d\d \d\d:\d\d:\d\d\.\d+) ")


def _cinder_time(line: str) -> Optional[float]:
    match = _CINDER.match(line)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() if match else None


def _postgres_time(line: str) -> Optional[float]:
    match = _POSTGRES.match(line)
    if not match or (match.group(2) == "LOG" and line[match.end() :].lstrip().startswith(_POSTGRES_ROUTINE)):
        return None
    moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
    return moment.replace(tzinfo=timezone.utc).timestamp()


def _pacemaker_time(line: str, year: int) -> Optional[float]:
    # The controller's line of each operation's result, where the agent's exit reason is.
    match = _PACEMAKER.match(line)
    if not match or "pacemaker-controld" not in line or "ocf-exit-reason" not in line:
        return None
    return datetime.strptime(f"{year} {match.group(1)}", "%Y %b %d %H:%M:%S.%f").timestamp()


def lines_between(
    path: Path, since: float, until: float, stamp: Callable[[str], Optional[float]]
) -> List[str]:  # fmt: skip
    """The lines of path that stamp dates from since to until (epoch seconds), the last TAIL."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    kept = [line for line in text.splitlines() if since <= (stamp(line) or 0.0) <= until]
    return kept[-TAIL:]


def report(
    since: float, cinder_logs: Iterable[Path], postgres_log: Path, pacemaker_logs: Iterable[Path],
    until: float = float("inf"),
) -> str:  # fmt: skip
    """One text: each source's lines from since to until, under its path; sources with none
    left out."""
    # Pacemaker's lines carry no year: the scenario's (one does not span a new year).
    pacemaker_time = functools.partial(_pacemaker_time, year=datetime.fromtimestamp(since).year)
    sources = [
        *((path, _cinder_time) for path in sorted(cinder_logs)),
        (postgres_log, _postgres_time),
        *((path, pacemaker_time) for path in pacemaker_logs),
    ]
    parts = []
    for path, stamp in sources:
        lines = lines_between(path, since, until, stamp)
        if lines:
            parts.append(f"--- {path} ({len(lines)} lines of the scenario's, at most {TAIL})")
            parts.extend(line[:600] for line in lines)
    return "\n".join(parts) or "no warning, error or exit reason was logged in the scenario's time"
