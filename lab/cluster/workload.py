"""A cloud user's volume workload through the VIP, and what it saw in a window of time (issue 13).

Workload runs lab/cluster/volume_client.py (python-cinderclient, from the stack venv) in the
client namespace for as long as the deployment runs: creates, shows, extends and deletes, each
request a Request.  view(start, end) says what the user saw meanwhile: requests tried and
failed by kind, the longest time without a successful one of each kind, the failures' causes,
and the volumes that ended in error or did not settle.  hold() and manage() make a volume
before a fault and manage it after (extend, delete): whether the user still can, how soon,
and through the same service host.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lab.cluster.harness import CLIENT_NS, HarnessError, wait_for
from lab.cluster.recorder import Recorder
from lab.stack.openstack import Credentials, OpenStack

SCRIPT = Path(__file__).resolve().with_name("volume_client.py")
KINDS = ("create", "show", "extend", "delete")


@dataclass(frozen=True)
class Request:
    kind: str  # create, show, extend, delete; state (a wait's bad end); final (after clean-up)
    sent: float  # CLOCK_MONOTONIC, as time.monotonic() here
    done: float
    result: str  # ok, http:<status>, an exception class; for state/final, the volume's status
    volume: Optional[str]

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass
class ClientView:
    """What the user saw between start and end."""

    seconds: float
    window: Tuple[float, float] = (0.0, 0.0)  # time.monotonic() at its start and end
    began_at: float = 0.0  # its start as epoch seconds, where the logs' lines are looked up
    tried: Dict[str, int] = field(default_factory=dict)
    failed: Dict[str, int] = field(default_factory=dict)
    longest_without: Dict[str, float] = field(default_factory=dict)  # kind -> s without a success
    causes: Dict[str, int] = field(default_factory=dict)  # failure result -> count
    unsettled: List[str] = field(default_factory=list)  # "<volume> <status>": error or stuck
    # What the cluster did meanwhile, for the floor and the explanations (see note_cluster)
    starts: Dict[str, float] = field(default_factory=dict)  # "<resource> on <node>" -> start's s
    monitor_interval_s: Optional[float] = None
    broker_stopped: bool = False  # the scenario stopped the message broker in the window
    backend_replaced: bool = False  # a cinder-volume backend process died, its parent made another

    def note_cluster(
        self, starts: Dict[str, float], monitor_interval_s: float, broker_stopped: bool,
        backend_replaced: bool = False,
    ) -> None:  # fmt: skip
        self.starts = dict(starts)
        self.monitor_interval_s = monitor_interval_s
        self.broker_stopped = broker_stopped
        self.backend_replaced = backend_replaced

    def recount_unsettled(self, requests: Sequence[Request]) -> None:
        """Count again the waits begun in the window, now that the late ones gave up too."""
        self.unsettled = unsettled(requests, *self.window)

    @property
    def floor_s(self) -> Optional[float]:
        """The shortest window Pacemaker allows for this fault: one monitor interval to see
        it, plus the longest start it then ran (starts run side by side).  None when Pacemaker
        started nothing: the window is then the outage's own, not a recovery's."""
        if not self.starts or self.monitor_interval_s is None:
            return None
        return self.monitor_interval_s + max(self.starts.values())

    def unexplained(self, volume_resource: str) -> List[str]:
        """The unsettled volumes that cinder's own design does not account for (README, *What
        a cloud user sees through a failover*), given what happened in the window:

        * error, or stuck in creating, extending or deleting: where a cinder-volume server
          started in the window, Pacemaker's start or a backend process its parent put in the
          place of a dead one (the server's start-up cleanup sets its host's creating volumes
          to error; a request dies with the process that had taken it off the queue);
        * stuck in creating, extending or deleting: also where the broker was stopped
          (cinder-api accepted the request, and its cast was lost with the queues that are
          not durable).
        """
        # "<primitive>[:<instance>] on <node>"
        volume_started = self.backend_replaced or any(
            key.split(" on ")[0].split(":")[0] == volume_resource for key in self.starts
        )
        left = []
        for entry in self.unsettled:
            status = entry.partition(" ")[2]
            stuck = status in ("timeout:creating", "timeout:extending", "timeout:deleting")
            if (status == "error" or stuck) and volume_started:
                continue
            if stuck and self.broker_stopped:
                continue
            left.append(entry)
        return left

    def line(self) -> str:
        kinds = "; ".join(
            f"{k} {self.failed.get(k, 0)}/{self.tried.get(k, 0)} failed, "
            f"{self.longest_without.get(k, self.seconds):.1f} s without one"
            for k in KINDS
        )
        causes = ", ".join(f"{c} x{n}" for c, n in sorted(self.causes.items())) or "none"
        unsettled = ", ".join(self.unsettled) or "none"
        floor = "" if self.floor_s is None else f"; Pacemaker's floor {self.floor_s:.1f} s"
        return f"{self.seconds:.0f} s: {kinds}; failures: {causes}; volumes unsettled: {unsettled}{floor}"

    def as_json(self) -> Dict[str, object]:
        return {
            "seconds": round(self.seconds, 1),
            "tried": self.tried,
            "failed": self.failed,
            "longest_without_s": {k: round(v, 1) for k, v in self.longest_without.items()},
            "causes": self.causes,
            "unsettled": self.unsettled,
            "pacemaker_starts_s": self.starts,
            "floor_s": None if self.floor_s is None else round(self.floor_s, 1),
        }


def longest_without(successes: Sequence[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] with no success in it."""
    edges = [start, *sorted(t for t in successes if start <= t <= end), end]
    return max(b - a for a, b in zip(edges, edges[1:]))


def view(requests: Sequence[Request], start: float, end: float) -> ClientView:
    """What the requests done within [start, end] showed the user."""
    window = [r for r in requests if start <= r.done <= end]
    asked = [r for r in window if r.kind in KINDS]
    seen = ClientView(end - start, (start, end))
    seen.tried = dict(Counter(r.kind for r in asked))
    seen.failed = dict(Counter(r.kind for r in asked if not r.ok))
    seen.causes = dict(Counter(r.result for r in asked if not r.ok))
    for kind in KINDS:
        seen.longest_without[kind] = longest_without(
            [r.done for r in asked if r.kind == kind and r.ok], start, end
        )
    seen.unsettled = unsettled(requests, start, end)
    return seen


def unsettled(requests: Sequence[Request], start: float, end: float) -> List[str]:
    """ "<volume> <status>" of the waits begun within [start, end] that ended in error or
    unsettled, also those that gave up after end (call again once the client stopped)."""
    return [f"{r.volume} {r.result}" for r in requests if r.kind == "state" and start <= r.sent <= end]


def parse(line: str) -> Optional[Request]:
    """One of volume_client.py's JSON lines, None for anything else."""
    try:
        data = json.loads(line)
        return Request(data["kind"], float(data["sent"]), float(data["done"]), str(data["result"]),
                       data.get("volume"))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


class Workload:
    """volume_client.py in the client namespace, its requests read as they complete."""

    def __init__(
        self, python: Path, credentials: Credentials, *, ns: str = CLIENT_NS, workers: int = 2,
        duration_s: float = 3600, settle_s: float = 30,
    ) -> None:  # fmt: skip
        """settle_s: how long a worker waits for one volume to settle before it calls it stuck
        and goes on (the faults leave some in creating for good)."""
        argv = [
            "ip", "netns", "exec", ns, str(python), str(SCRIPT), "--workers", str(workers),
            "--duration", str(duration_s), "--within", str(settle_s),
        ]  # fmt: skip
        self.credentials = credentials
        self._recorder = Recorder(argv, parse)

    def start(self) -> Workload:
        c = self.credentials  # on stdin: never on a command line
        self._recorder.start(json.dumps({
            "auth_url": c.auth_url, "username": c.username, "password": c.password,
            "project_name": c.project_name, "user_domain_name": c.user_domain_name,
            "project_domain_name": c.project_domain_name,
        }))  # fmt: skip
        return self

    def stop(self, timeout: float = 240) -> List[Request]:
        """Close its stdin: it ends its cycles, deletes what it made (each volume given time to
        settle) and exits.  The final records: how each volume ended."""
        self._recorder.stop(timeout)
        return self.finals()

    @property
    def stderr(self) -> str:
        return self._recorder.stderr

    def snapshot(self) -> List[Request]:
        return self._recorder.records()

    def finals(self) -> List[Request]:
        return [r for r in self.snapshot() if r.kind == "final"]

    def view(self, start: float, end: float) -> ClientView:
        return view(self.snapshot(), start, end)


# ------------------------------------------------------------- a volume made before a fault


@dataclass(frozen=True)
class Held:
    """A cloud user's volume made (available) before a fault, and its service host then."""

    volume: str
    host: str  # os-vol-host-attr:host, host@backend#pool (the admin's view)


@dataclass(frozen=True)
class Managed:
    """The held volume after the fault: extended and deleted, by which service host."""

    held: Held
    extended_s: Optional[float]  # from the first extend tried to the volume available at 2 GiB
    deleted: bool
    host_after: str
    why: str  # what went wrong, "" if nothing

    @property
    def ok(self) -> bool:
        return self.extended_s is not None and self.deleted and self.host_after == self.held.host


def _volume(stack: OpenStack, volume: str) -> Optional[Dict[str, Any]]:
    """The admin's view of the volume, None once it is gone."""
    answer = stack.volumes_call("GET", f"/{volume}")
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise HarnessError(f"GET volume {volume}: HTTP {answer.status}")
    found: Dict[str, Any] = answer.json()["volume"]
    return found


def _settled(stack: OpenStack, volume: str, size: int) -> Optional[Dict[str, Any]]:
    """The volume once available at size; None while it is not yet, or cannot be asked
    (cinder-api or Keystone moving); HarnessError when it went to error or is gone."""
    try:
        seen = _volume(stack, volume)
    except (OSError, RuntimeError):  # no answer (URLError), no token
        return None
    if seen is None or seen["status"].startswith("error"):
        raise HarnessError(f"volume {volume}: {seen['status'] if seen else 'gone'}")
    return seen if seen["status"] == "available" and seen["size"] == size else None


def hold(stack: OpenStack, tenant: Credentials, within: float = 120) -> Held:
    """A 1 GiB volume of the tenant's, available, before a fault."""
    made = stack.volumes_call("POST", "", {"volume": {"size": 1, "name": "cocf-held"}}, tenant)
    if made.status != 202:
        raise HarnessError(f"create the held volume: HTTP {made.status} {made.body[:200]!r}")
    volume = made.json()["volume"]["id"]
    seen = wait_for(lambda: _settled(stack, volume, 1), within, f"held volume {volume} available", 0.5)
    return Held(volume, seen.get("os-vol-host-attr:host") or "")


def manage(stack: OpenStack, tenant: Credentials, held: Held, within: float = 120) -> Managed:
    """After the fault: extend the held volume to 2 GiB (asked again while cinder-api or the
    scheduler refuse, for up to within seconds: the time until the user can manage it again),
    then delete it, as its owner."""
    start = time.monotonic()
    extended_s: Optional[float] = None
    why = ""
    try:

        def extend() -> bool:
            body = {"os-extend": {"new_size": 2}}
            try:
                return stack.volumes_call("POST", f"/{held.volume}/action", body, tenant).status == 202
            except (OSError, RuntimeError):  # no answer, no token: asked again
                return False

        wait_for(extend, within, f"extend of {held.volume} accepted", 1.0)
        seen = wait_for(lambda: _settled(stack, held.volume, 2), within, f"{held.volume} at 2 GiB", 0.5)
        extended_s = time.monotonic() - start
        host_after = seen.get("os-vol-host-attr:host") or ""
    except HarnessError as err:
        why, seen_now = str(err), None
        with contextlib.suppress(HarnessError, OSError, RuntimeError):
            seen_now = _volume(stack, held.volume)
        host_after = (seen_now or {}).get("os-vol-host-attr:host") or ""
    try:
        deleted = stack.volumes_call("DELETE", f"/{held.volume}", credentials=tenant).status == 202
        deleted = deleted and wait_for(lambda: _volume(stack, held.volume) is None, within, "deleted", 0.5)
    except (HarnessError, OSError, RuntimeError) as err:
        deleted, why = False, why or f"delete: {err}"
    return Managed(held, extended_s, deleted, host_after, why)
