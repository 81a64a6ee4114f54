"""What cinder-volume, cinder-scheduler and cinder-backup share: services that work through the
message broker and report a heartbeat to the database.

Exports: RpcServiceAgent, rpc_parameters, rpc_spec, RPC_ACTIONS, RESPAWN_WAIT_S.

Health, cheapest first, each check a CheckResult:

1. processes: the leader is ours (DaemonAgent.status); cinder-volume also has one live child
   per enabled backend.  oslo.service respawns a backend child that dies (~0.5 s here): a
   missing child is looked for again for RESPAWN_WAIT_S before it counts as gone.
2. amqp: each process that should talk to the broker holds an ESTABLISHED TCP connection to
   an address of transport_url (read from /proc).  Not connected past the grace: if no broker address
   accepts a connection from this node it is the broker's outage (0 and a warning); if one
   does, the service is sick (1).
3. heartbeat (with credentials): the service's rows in cinder-api's os-services are `up`,
   and were updated since the process started.  cinder-api or Keystone failing is DEGRADED.

start waits until every check passes (PENDING means "not yet") and gives up at once when the
daemon or a backend child dies, or when the grace passed with the service still failing.
"""

from __future__ import annotations

import os
import time

from cinder_ocf import amqp, httpclient, process
from cinder_ocf.agents.keystone import CREDENTIAL_PARAMETERS, REGION_PARAMETER, TokenAgent
from cinder_ocf.checks import DEGRADED, FAILED, OK, PENDING, SKIPPED, timed
from cinder_ocf.daemon import daemon_parameters
from cinder_ocf.metadata import Action, AgentSpec, Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.statefile import StateFileError, read_state, write_state

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

    from cinder_ocf.checks import CheckResult, Deadline
    from cinder_ocf.config import CinderConfig

    Endpoint = Tuple[str, int]

RESPAWN_WAIT_S = 2.0  # oslo.service replaces a dead backend child in ~0.5 s here
# After its longest pause between reconnection attempts, a service still needs to connect and
# redeclare its queues: seconds on a loaded node.
RECONNECT_SLACK_S = 5.0
_POLL_S = 0.1

RPC_ACTIONS = (
    Action("start", 120),
    Action("stop", 120),
    Action("monitor", 30, interval=10, depth=0),
    Action("status", 20),
    Action("validate-all", 30),
    Action("meta-data", 5),
)


def rpc_parameters(binary: str) -> List[Parameter]:
    """The parameters of an RPC service agent: the daemon's, the checks', the 2013 agent's."""
    return [
        *daemon_parameters(
            binary,
            "How long one request of the checks may take: os-services of cinder-api, a token "
            "from Keystone, a TCP connection to the broker when the service holds none. A request "
            "that takes longer counts as a dependency's outage (a warning), not as the service's "
            "failure. It is also capped by the operation's own timeout, so the agent always "
            "answers before Pacemaker would kill it.",
        ),
        Parameter(
            "start_grace", "Seconds a (re)started service may take to connect and report",
            f"How long {binary} may go without an AMQP connection, or without a heartbeat in "
            f"os-services, after its process started before the monitor fails it; also how long "
            f"it may stay disconnected while the broker accepts connections, though never less "
            f"than oslo.messaging's longest pause between reconnection attempts plus 5 s "
            f"(cinder.conf [oslo_messaging_rabbit] rabbit_interval_max + kombu_reconnect_delay "
            f"+ kombu_reconnect_splay: 31 s by default). start waits at most this long for the "
            f"service to become healthy. Raise it for backends whose driver takes long to "
            f"initialise.",
            type="integer", default="60", minimum=1, maximum=3600,
        ),
        Parameter(
            "url", "cinder-api URL for the heartbeat check",
            f"Base URL of a cinder-api (for example the virtual IP: http://192.0.2.10:8776) "
            f"asked for {binary}'s rows in os-services. Empty: the block-storage (volumev3) "
            f"endpoint of the Keystone catalog, internal else public. The heartbeat check "
            f"needs Keystone credentials with the admin role (cinder's own service user in "
            f"[keystone_authtoken] has it).",
        ),
        *CREDENTIAL_PARAMETERS,
        REGION_PARAMETER,
        Parameter(
            "amqp_server_port", "AMQP port (2013 agent)",
            "Accepted from the 2013 shell agent. When set, the AMQP check looks for connections "
            "to this port on every broker host of transport_url instead of the ports the URL "
            "gives. Leave it unset: the hosts and ports come from cinder.conf's transport_url "
            "(a host without a port: 5672, and with TLS 5671 too).",
            type="integer", default="5672", minimum=1, maximum=65535,
        ),
    ]  # fmt: skip


def rpc_spec(
    name: str, binary: str, shortdesc: str, longdesc: str, extra: Sequence[Parameter] = ()
) -> AgentSpec:
    return AgentSpec(
        name=name,
        version="1.0",
        shortdesc=shortdesc,
        longdesc=longdesc,
        parameters=[*rpc_parameters(binary), *extra],
        actions=RPC_ACTIONS,
    )


def _split(text: str) -> List[str]:
    return [word for word in text.split(" ") if word]


def _endpoints(text: str) -> List[Endpoint]:
    out = []
    for word in _split(text):
        host, port = amqp.parse_hostport(word)
        out.append((host, port or amqp.DEFAULT_PORT))
    return out


def _format(endpoints: Sequence[Endpoint]) -> str:
    return ", ".join(amqp.format_hostport(h, p) for h, p in endpoints)


def _epoch(stamp: Any) -> Optional[float]:
    """os-services' updated_at ('2024-05-01T12:00:00.123456', UTC, no zone) as epoch seconds."""
    if not isinstance(stamp, str) or len(stamp) < 19 or stamp[4] + stamp[7] + stamp[10] != "--T":
        return None
    from datetime import datetime, timezone  # noqa: PLC0415 - strptime would cost 1 ms more

    try:
        moment = datetime(
            int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]),
            int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19]), tzinfo=timezone.utc,
        )  # fmt: skip
    except ValueError:
        return None
    fraction = stamp[19:].lstrip(".").rstrip("Z")
    return moment.timestamp() + (float("0." + fraction) if fraction.isdigit() else 0.0)


class RpcServiceAgent(TokenAgent):
    """A cinder service that takes its work from the message broker."""

    service_binary = ""  # the binary column of os-services
    per_backend = False  # cinder-volume: one child process per enabled backend
    wants_endpoint = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grace = float(self.params.integer("start_grace"))
        self._facts: Optional[Dict[str, str]] = None
        self._seen_children: Dict[int, int] = {}  # pid -> start ticks, during start
        self._talkers: List[process.ProcStat] = []  # the processes that should hold a connection

    @property
    def starting(self) -> bool:
        return self.env.action == "start"

    # ---------------------------------------------------------------- cinder.conf facts
    def transport(self, config: CinderConfig) -> amqp.Transport:
        """transport_url parsed, its passwords registered as secrets before anything logs."""
        try:
            transport = amqp.parse_transport_url(config.transport_url)
        except amqp.TransportError as err:
            raise OcfError(OcfExit.ERR_CONFIGURED, f"{self.config_path}: {err}") from None
        for secret in transport.secrets:
            self.log.add_secret(secret)
        return transport

    def derive_facts(self, config: CinderConfig) -> Dict[str, str]:
        transport = self.transport(config)
        facts = {
            "backends": " ".join(config.enabled_backends),
            "amqp_skip": "",
            "reconnect_pause": f"{config.rabbit_reconnect_pause:g}",
        }
        if self.per_backend:
            facts["services"] = " ".join(config.volume_service_hosts())
        else:
            facts["services"] = config.service_host
        if not transport.is_amqp:
            facts["amqp_skip"] = f"transport_url uses {transport.scheme}://, not an AMQP broker"
            return facts
        override = self.params.integer("amqp_server_port") if self.params.given("amqp_server_port") else None
        endpoints = amqp.broker_endpoints(transport, config.rabbit_ssl, override)
        addresses, _ = amqp.resolve(endpoints)
        facts["brokers"] = " ".join(amqp.format_hostport(h, p) for h, p in endpoints)
        # A hint for the fast path: names are resolved again whenever a connection matches none.
        facts["addresses"] = " ".join(amqp.format_hostport(h, p) for h, p in sorted(addresses))
        return facts

    def facts(self) -> Dict[str, str]:
        if self._facts is None:
            self._facts = self.config_facts()
        return self._facts

    # ---------------------------------------------------------------- checks
    def health(self, deadline: Deadline) -> List[CheckResult]:
        # A monitor's status() has just read the processes; start polls, so it reads them anew.
        state = self.last_state
        if state is None or self.starting:
            state = self.process_state()
        if not state.running:
            return []
        results = [timed("processes", lambda: self._check_processes(deadline))]
        if results[-1].status != FAILED:
            results.append(timed("amqp", lambda: self._check_amqp(deadline)))
        if results[-1].status != FAILED:
            results.append(timed("heartbeat", self._check_heartbeat))
        if self.starting:
            self._give_up_after_grace(results)
        return results

    def _leader(self) -> process.ProcessIdentity:
        assert self.last_state is not None and self.last_state.recorded is not None
        return self.last_state.recorded

    def _leader_age(self) -> float:
        return process.age_seconds(self._leader().start_ticks)

    def _give_up_after_grace(self, results: List[CheckResult]) -> None:
        """In start, a check still failing once the grace is over will not heal by waiting."""
        failed = [r for r in results if r.status == FAILED]
        age = self._leader_age()
        if failed and age >= self.grace:
            raise OcfError(
                OcfExit.ERR_GENERIC,
                f"{self.name} is not healthy {age:.0f} s after it started (start_grace "
                f"{self.grace:g} s): {failed[0].detail}; {self.last_output()}",
            )

    def _check_processes(self, deadline: Deadline) -> Tuple[str, str]:
        state = self.last_state
        assert state is not None and state.recorded is not None
        leader = state.recorded.pid
        if not self.per_backend:
            self._talkers = state.stats
            return OK, f"process {leader} runs ({len(state.stats)} in its tree)"
        backends = _split(self.facts()["backends"])
        children = state.forks()
        if self.starting:
            self._notice_child_deaths(children)
            if len(self._seen_children) < len(backends) and len(children) < len(backends):
                self._talkers = children
                status = FAILED if self._leader_age() >= self.grace else PENDING
                return status, (
                    f"{len(children)} of {len(backends)} backend processes started so far "
                    f"(one per enabled backend: {', '.join(backends)})"
                )
        if len(children) < len(backends):
            children = self._wait_for_respawn(len(backends), deadline)
            if self.last_state is None or not self.last_state.running:
                return FAILED, f"{self.name} parent process {leader} died during the check"
        self._talkers = children
        pids = " ".join(str(st.pid) for st in children)
        if len(children) < len(backends):
            return FAILED, (
                f"only {len(children)} of {len(backends)} {self.name} backend processes run "
                f"(one per enabled backend: {', '.join(backends)}; running: {pids or 'none'}); "
                f"the parent {leader} did not replace the missing one within {RESPAWN_WAIT_S:g} s"
            )
        return OK, f"parent {leader} and {len(children)} backend processes ({pids})"

    def _notice_child_deaths(self, children: List[process.ProcStat]) -> None:
        """In start, a backend child that dies is a failed start: its output says why."""
        alive = {st.pid: st.start_ticks for st in children}
        for pid, ticks in self._seen_children.items():
            if alive.get(pid) != ticks:
                raise OcfError(
                    OcfExit.ERR_GENERIC,
                    f"{self.name} backend process {pid} died during start; {self.last_output()}",
                )
        self._seen_children.update(alive)

    def _wait_for_respawn(self, expected: int, deadline: Deadline) -> List[process.ProcStat]:
        end = time.monotonic() + deadline.cap(RESPAWN_WAIT_S)
        while True:
            state = self.process_state()
            children = state.forks()
            if len(children) >= expected or not state.running or time.monotonic() >= end:
                if len(children) >= expected:
                    self.log.info(f"a missing backend process of {self.name} was replaced by the parent")
                return children
            time.sleep(_POLL_S)

    # ---------------------------------------------------------------- AMQP
    def _check_amqp(self, deadline: Deadline) -> Tuple[str, str]:
        facts = self.facts()
        if facts.get("amqp_skip"):
            return SKIPPED, facts["amqp_skip"]
        endpoints = _endpoints(facts.get("brokers", ""))
        addresses = set(_endpoints(facts.get("addresses", "")))
        peers: Dict[int, Set[Endpoint]] = {}
        for st in self._talkers:
            try:
                peers[st.pid] = amqp.established_peers(st.pid)
            except amqp.PeersUnavailable as err:
                if err.kind != "gone":
                    return SKIPPED, str(err)
                # Ended since the process scan: a missing backend child is the process
                # check's business at the next monitor, a short-lived helper nobody's.
        talkers = [st for st in self._talkers if st.pid in peers]
        if not talkers:
            return PENDING, "the processes to check ended during the check; checked again next time"
        connected = {pid for pid, seen in peers.items() if seen & addresses}
        if not self._enough(connected, talkers):
            fresh, problems = amqp.resolve(endpoints)  # the cached addresses may be stale
            for problem in problems:
                self.log.warning(f"cannot resolve broker host {problem}")
            addresses = fresh
            connected = {pid for pid, seen in peers.items() if seen & addresses}
        if self._enough(connected, talkers):
            self._clear_trouble()
            links = sorted({amqp.format_hostport(*p) for pid in connected for p in peers[pid] & addresses})
            who = "each backend process" if self.per_backend else f"{len(connected)} process(es)"
            return OK, f"{who} connected to the broker ({', '.join(links)})"
        missing = [st for st in talkers if st.pid not in connected]
        if not self.per_backend:
            missing = [st for st in talkers if st.pid == self._leader().pid] or missing
        ages = {st.pid: process.age_seconds(st.start_ticks) for st in missing}
        overdue = [pid for pid, age in ages.items() if age >= self.grace]
        what, holds = self._describe(missing)
        if not overdue:
            youngest = min(ages.values())
            return PENDING, (
                f"{what} {holds} no AMQP connection yet ({youngest:.0f} s after start; "
                f"start_grace {self.grace:g} s)"
            )
        reachable = amqp.first_reachable(sorted(addresses), self.check_timeout())
        if reachable is None:
            self._note_trouble(outage=True)
            detail = (
                f"no broker of transport_url ({_format(endpoints)}) accepts a connection from this "
                f"node, and {what} {holds} no AMQP connection: an outage of a dependency, which "
                f"restarting {self.name} cannot fix"
            )
            return (PENDING if self.starting else DEGRADED), detail
        broker = amqp.format_hostport(*reachable)
        if self.starting:
            return FAILED, f"{what} {holds} no AMQP connection although the broker at {broker} answers"
        since = self._note_trouble(outage=False)
        lasting = time.time() - since
        allowed = self._reconnect_allowance()
        if lasting < allowed:
            return DEGRADED, (
                f"{what} {holds} no AMQP connection although the broker at {broker} accepts "
                f"connections (seen for {lasting:.0f} s; failing after {allowed:g} s unless it "
                f"reconnects)"
            )
        return FAILED, (
            f"{what} {holds} had no AMQP connection for {lasting:.0f} s although the broker at "
            f"{broker} accepts connections from this node"
        )

    def _reconnect_allowance(self) -> float:
        """How long a service that lost its connection may take to get it back: start_grace,
        but never less than oslo.messaging's longest pause between attempts (cinder.conf
        [oslo_messaging_rabbit]) and a connection's set-up, or a service that is only waiting
        for its next attempt after a broker outage would be restarted."""
        try:
            pause = float(self.facts().get("reconnect_pause", ""))
        except ValueError:
            pause = 0.0
        return max(self.grace, pause + RECONNECT_SLACK_S)

    def _enough(self, connected: Set[int], talkers: List[process.ProcStat]) -> bool:
        if self.per_backend:
            return len(connected) == len(talkers)
        return bool(connected)

    def _describe(self, missing: List[process.ProcStat]) -> Tuple[str, str]:
        """(who, verb): "cinder-volume backend processes 12, 13", "have"."""
        pids = ", ".join(str(st.pid) for st in missing)
        if self.per_backend and len(missing) > 1:
            return f"{self.name} backend processes {pids}", "have"
        if self.per_backend:
            return f"{self.name} backend process {pids}", "has"
        return f"{self.name} (process {pids})", "has"

    def _trouble_key(self) -> str:
        leader = self._leader()
        return f"{leader.pid}:{leader.start_ticks}"

    def _note_trouble(self, outage: bool) -> float:
        """When the service's own AMQP trouble began: a broker outage restarts the clock, since
        the service cannot reconnect before the broker is back (and then takes a while)."""
        path = self.state_path("amqp")
        now = time.time()
        try:
            record = read_state(path)
        except StateFileError:
            record = {}
        if not outage and record.get("leader") == self._trouble_key():
            try:
                return float(record["since"])
            except (KeyError, ValueError):
                pass
        try:
            write_state(path, {"leader": self._trouble_key(), "since": f"{now:.3f}"})
        except OSError as err:
            self.log.warning(f"cannot record the AMQP state in {path}: {err}")
        return now

    def _clear_trouble(self) -> None:
        try:
            os.unlink(self.state_path("amqp"))
        except OSError:
            pass

    # ---------------------------------------------------------------- heartbeat
    def _check_heartbeat(self) -> Tuple[str, str]:
        skip = "the heartbeat in os-services is not checked"
        outage = f"{skip}; {self.name} is judged by its processes and connections"
        token, fresh, problem = self.token(skip, outage)
        while True:
            if token is None:
                return problem
            base = self._services_base(token.project_id, token.endpoint)
            if not base:
                return SKIPPED, (
                    "the Keystone catalog has no block-storage (volumev3) endpoint: set url to "
                    "check the heartbeat in os-services"
                )
            url = f"{base}/os-services?binary={self.service_binary}"
            try:
                answer = self.http_get(url, token.value)
            except httpclient.HttpError as err:
                return DEGRADED, f"cinder-api does not answer ({err.message}): {skip}"
            if answer.status == 401 and not fresh:
                token, problem = self.renew_token(skip, outage)
                fresh = True
                continue
            if answer.status in (401, 403):
                return DEGRADED, (
                    f"cinder-api refuses GET os-services to the monitoring user (HTTP "
                    f"{answer.status}; it needs the admin role): {skip}"
                )
            if answer.status != 200:
                return DEGRADED, f"cinder-api answered HTTP {answer.status} for GET {url}: {skip}"
            try:
                rows = answer.json()["services"]
                if not isinstance(rows, list):
                    raise TypeError("services is not a list")
            except (httpclient.HttpError, KeyError, TypeError) as err:
                return DEGRADED, f"unexpected os-services answer from {url} ({err}): {skip}"
            return self._judge_rows(rows)

    def _services_base(self, project_id: str, endpoint: str) -> str:
        url = self.params.text("url").strip().rstrip("/")
        if not url:
            return endpoint
        for suffix in (f"/{project_id}", "/v3", "/v2", "/v1"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return f"{url}/v3/{project_id}"

    def _judge_rows(self, rows: List[Any]) -> Tuple[str, str]:
        expected = _split(self.facts()["services"])
        started = process.started_at(self._leader().start_ticks)
        age = self._leader_age()
        now = time.time()
        by_host = {
            row.get("host"): row
            for row in rows
            if isinstance(row, dict) and row.get("binary", self.service_binary) == self.service_binary
        }
        down, silent, up = [], [], []
        for host in expected:
            row = by_host.get(host)
            updated = _epoch(row.get("updated_at") or row.get("created_at")) if row else None
            # updated_at has microseconds, a process start time 10 ms ticks: a little slack.
            if updated is None or updated < started - 0.5:
                silent.append(host)
            elif row is not None and row.get("state") != "up":
                down.append(f"{host} (last heartbeat {now - updated:.0f} s ago)")
            else:
                up.append(host)
        if down:
            return FAILED, f"{self.service_binary} is down in os-services: {', '.join(down)}"
        if silent:
            what = ", ".join(silent)
            if age < self.grace:
                return PENDING, f"{what} not reported in os-services since the start {age:.0f} s ago"
            return FAILED, (
                f"{what} has not reported to os-services since {self.name} started {age:.0f} s ago"
            )
        return OK, f"up in os-services: {', '.join(up)}"

    # ---------------------------------------------------------------- validation
    def validate_service(self) -> None:
        url = self.params.text("url").strip()
        if url:
            try:
                httpclient.split_url(url)
            except ValueError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"url: {err}") from None
        config = self.validated_config or self.load_config()
        transport = self.transport(config)
        if not config.transport_url.strip():
            self.log.warning(
                f"{self.config_path} sets no transport_url: oslo.messaging's default "
                f"rabbit://localhost:5672 is assumed"
            )
        if not transport.is_amqp:
            self.log.warning(f"transport_url uses {transport.scheme}://: the AMQP check is skipped")
        if self.params.given("amqp_server_port"):
            self.log.info(
                f"amqp_server_port={self.params.integer('amqp_server_port')} replaces the ports "
                f"of transport_url in the AMQP check"
            )
        self.validate_rpc_service(config)
        self.validate_credentials("the monitor checks processes and AMQP connections only")

    def validate_rpc_service(self, config: CinderConfig) -> None:
        """Service-specific validation of cinder.conf."""
