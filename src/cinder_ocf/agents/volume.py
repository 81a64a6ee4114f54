"""ocf:openstack:cinder-volume: the volume service, one process per backend, judged by each;
active/passive, or cloned active/active (agents/active_active.py).

Exports: SERVICE, SPEC.

cinder-volume (oslo.service) runs a parent that holds no broker connection and one child per
backend of enabled_backends, each registered in os-services as host@backend.  The 2013 agent
grepped netstat for the parent's pid; this one checks every backend child (checks/rpc.py).
In active/passive, every node must register the backends under the same host: cinder.conf's
host (or each backend's backend_host) must be set, the same on all nodes.
"""

from __future__ import annotations

from cinder_ocf.agents.active_active import validate_mode
from cinder_ocf.agents.rpc import rpc_service, rpc_spec
from cinder_ocf.checks.cluster import cluster_members, coordination
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.deep import backend_round_trips
from cinder_ocf.checks.rpc import amqp_each_backend, backend_processes, heartbeat
from cinder_ocf.checks.service_host import GUARD_PARAMETER
from cinder_ocf.metadata import Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack.conf import NODE_LOCAL, CinderConfig

SPEC = rpc_spec(
    "cinder-volume",
    "cinder-volume",
    "OpenStack Block Storage volume service (cinder-volume)",
    "Manages cinder-volume, the OpenStack Block Storage volume service, as a Pacemaker "
    "resource: one instance in the cluster (active/passive), or a clone on every node when "
    "cinder.conf sets cluster (active/active: start and validate-all refuse a clone whose "
    "coordination backend, host or drivers would let two nodes corrupt a volume). "
    "cinder-volume runs a parent "
    "process and one child per backend of enabled_backends. The monitor checks that the "
    "parent is the process start recorded, that one child per backend runs (a child the parent "
    "replaces within a few seconds is fine), that each child holds a connection to the message "
    "broker of transport_url, and, with Keystone credentials, that each backend (host@backend) "
    "is up in cinder-api's os-services. A broker or Keystone outage makes it warn, not fail. "
    "It never runs two servers of one host@backend (guard_service_host): start refuses while "
    "another server still reports for it, and the monitor fails when the broker counts a "
    "second server on its queues. "
    "In active/passive, set host (or each backend's backend_host) in cinder.conf, the same on "
    "every node, so that the backends keep their name wherever the resource runs.",
    extra=[
        GUARD_PARAMETER,
        Parameter(
            "multibackend", "Several backends (2013 agent, ignored)",
            "Accepted from the 2013 shell agent and ignored: the backends are read from "
            "enabled_backends in cinder.conf, and each one is checked.",
            type="boolean", default="false", reloadable=True,
            deprecated="the backends come from enabled_backends in cinder.conf",
        ),
    ],
    deep=True,
)  # fmt: skip


def validate_backends(ctx: Context, config: CinderConfig) -> None:
    if ctx.params.given("multibackend"):
        ctx.log.notice_once(
            "multibackend",
            "parameter multibackend is deprecated and ignored: the backends come from "
            "enabled_backends in cinder.conf",
        )
    if not config.enabled_backends:
        raise OcfError(
            OcfExit.ERR_CONFIGURED,
            f"{config.source} sets no enabled_backends: cinder-volume refuses to start without them",
        )
    if ctx.env.cloned:
        return  # active/active: agents/active_active.py
    if config.coordination_scheme in NODE_LOCAL:
        ctx.log.info(
            f"{config.source}: [coordination] backend_url is node-local ("
            f"{'file://' if config.coordination_scheme else 'unset: file://$state_path'}): its "
            f"locks do not span nodes, which active/passive does not need (one server per service "
            f"host is guarded here)"
        )
    if config.host:
        return
    unnamed = [b for b, host in config.backend_hosts if not host]
    if unnamed:
        hint = (
            " ([DEFAULT] backend_host is not what cinder-volume uses for enabled_backends: "
            "set backend_host in each backend's section)"
            if config.backend_host
            else ""
        )
        ctx.log.warning(
            f"{config.source} sets neither host in [DEFAULT] nor backend_host for backend(s) "
            f"{', '.join(unnamed)}: they register as {config.service_host}@<backend>, named after "
            f"this node, so after a failover the volumes of the other node's name have no "
            f"service. Set host = <one name for the cluster> on every node{hint}"
        )


def backend_hosts(config: CinderConfig) -> tuple[str, ...]:
    return tuple(config.volume_service_hosts())


SERVICE = rpc_service(
    SPEC,
    "cinder-volume",
    checks=(backend_processes, amqp_each_backend, heartbeat, coordination, cluster_members),
    validators=(validate_backends, validate_mode),
    hosts_of=backend_hosts,
    one_server_per_host=True,
    deep_checks=(backend_round_trips,),
)
