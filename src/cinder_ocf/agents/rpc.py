"""What cinder-volume, cinder-scheduler and cinder-backup share: their parameters, facts and
validation.  Their checks are in checks/rpc.py.

Exports: rpc_parameters, rpc_spec, rpc_service, derive_facts, validate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from cinder_ocf.agents.base import (
    CREDENTIAL_PARAMETERS,
    REGION_PARAMETER,
    Service,
    Validator,
    daemon_parameters,
    standard_actions,
)
from cinder_ocf.checks import Check
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.rpc import amqp_any, give_up_after_grace, heartbeat, service_processes
from cinder_ocf.checks.service_host import nobody_else_serves, one_server
from cinder_ocf.checks.tokens import validate_credentials
from cinder_ocf.metadata import AgentSpec, Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import broker
from cinder_ocf.openstack.conf import CinderConfig
from cinder_ocf.openstack.facts import Facts

HostsOf = Callable[[CinderConfig], tuple[str, ...]]


def rpc_parameters(binary: str) -> list[Parameter]:
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
            type="integer", default="60", minimum=1, maximum=3600, reloadable=True,
        ),
        Parameter(
            "url", "cinder-api URL for the heartbeat check",
            f"Base URL of a cinder-api (for example the virtual IP: http://192.0.2.10:8776) "
            f"asked for {binary}'s rows in os-services. Empty: the block-storage (volumev3) "
            f"endpoint of the Keystone catalog, internal else public. The heartbeat check "
            f"needs Keystone credentials with the admin role (cinder's own service user in "
            f"[keystone_authtoken] has it).",
            reloadable=True,
        ),
        *CREDENTIAL_PARAMETERS,
        REGION_PARAMETER,
        Parameter(
            "amqp_server_port", "AMQP port (2013 agent)",
            "Accepted from the 2013 shell agent. When set, the AMQP check looks for connections "
            "to this port on every broker host of transport_url instead of the ports the URL "
            "gives. Leave it unset: the hosts and ports come from cinder.conf's transport_url "
            "(a host without a port: 5672, and with TLS 5671 too).",
            type="integer", default="5672", minimum=1, maximum=65535, reloadable=True,
            deprecated="the broker's hosts and ports come from transport_url in cinder.conf",
        ),
    ]  # fmt: skip


def rpc_spec(
    name: str,
    binary: str,
    shortdesc: str,
    longdesc: str,
    extra: Sequence[Parameter] = (),
    deep: bool = False,
) -> AgentSpec:
    """deep: the agent has depth-20 checks (a second monitor in OCF 1.1 meta-data)."""
    return AgentSpec(
        name=name,
        version="1.0",
        shortdesc=shortdesc,
        longdesc=longdesc,
        parameters=(*rpc_parameters(binary), *extra),
        # A service waits for its broker and its first heartbeat: longer starts and stops.
        actions=standard_actions(start_stop_s=120, validate_s=30, deep=deep),
    )


def transport(ctx: Context, config: CinderConfig) -> broker.Transport:
    """transport_url parsed, its passwords registered as secrets before anything logs."""
    try:
        parsed = broker.parse_transport_url(config.transport_url)
    except broker.TransportError as err:
        raise OcfError(OcfExit.ERR_CONFIGURED, f"{config.source}: {err}") from None
    for secret in parsed.secrets:
        ctx.log.add_secret(secret)
    return parsed


def own_host(config: CinderConfig) -> tuple[str, ...]:
    """The os-services host of cinder-scheduler and cinder-backup: cinder.conf's host."""
    return (config.service_host,)


def derive_facts(hosts_of: HostsOf, ctx: Context, config: CinderConfig) -> Facts:
    """The broker's endpoints and the os-services hosts the service reports as."""
    parsed = transport(ctx, config)
    endpoints: list[broker.Endpoint] = []
    addresses: set[broker.Endpoint] = set()
    if parsed.is_amqp:
        params = ctx.params
        override = params.integer("amqp_server_port") if params.given("amqp_server_port") else None
        endpoints = broker.broker_endpoints(parsed, config.rabbit_ssl, override)
        # A hint for the fast path: names are resolved again whenever a connection matches none.
        addresses, _ = broker.resolve(endpoints)
    return Facts(
        backends=config.enabled_backends,
        service_hosts=hosts_of(config),
        brokers=tuple(endpoints),
        addresses=tuple(sorted(addresses)),
        amqp_skip="" if parsed.is_amqp else f"transport_url uses {parsed.scheme}://, not an AMQP broker",
        reconnect_pause=config.rabbit_reconnect_pause,
        report_interval=float(config.report_interval),
        heartbeat_timeout=float(config.rabbit_heartbeat_timeout),
        tls=config.rabbit_ssl if parsed.tls is None else parsed.tls,
        ca_file=config.rabbit_ca_file,
        cluster=config.cluster,
        coordination_scheme=config.coordination_scheme,
        coordination=config.coordination_endpoints,
    )


def validate(ctx: Context, config: CinderConfig) -> None:
    parsed = transport(ctx, config)
    if not config.transport_url.strip():
        ctx.log.warning(
            f"{config.source} sets no transport_url: oslo.messaging's default "
            f"rabbit://localhost:5672 is assumed"
        )
    if not parsed.is_amqp:
        ctx.log.warning(f"transport_url uses {parsed.scheme}://: the AMQP check is skipped")
    if ctx.params.given("amqp_server_port"):
        ctx.log.info(
            f"amqp_server_port={ctx.params.integer('amqp_server_port')} replaces the ports "
            f"of transport_url in the AMQP check"
        )


def validate_monitoring(ctx: Context, config: CinderConfig) -> None:
    validate_credentials(ctx, "the monitor checks processes and AMQP connections only")


def rpc_service(
    spec: AgentSpec,
    binary: str,
    checks: Sequence[Check] = (service_processes, amqp_any, heartbeat),
    validators: Sequence[Validator] = (),
    hosts_of: HostsOf = own_host,
    one_server_per_host: bool = False,
    deep_checks: Sequence[Check] = (),
) -> Service:
    """one_server_per_host: start refuses while another server reports for the service's hosts,
    and the monitor counts the servers on their queues (checks/service_host.py)."""
    return Service(
        spec=spec,
        checks=(*checks, one_server) if one_server_per_host else checks,
        derive_facts=functools.partial(derive_facts, hosts_of),
        validators=(validate, *validators),
        check_validators=(validate_monitoring,),
        deep_checks=deep_checks,
        before_spawn=nobody_else_serves if one_server_per_host else None,
        give_up=give_up_after_grace,
        wants_endpoint=True,
        os_services_binary=binary,
    )
