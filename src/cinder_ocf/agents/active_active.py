"""cinder-volume active/active: a clone on every node, the nodes' services grouped by cinder.conf's
`cluster`, with what would corrupt volumes refused before anything starts (issue 15).

Exports: validate_mode.

The mode is the pair of facts the operator chose: the resource is cloned (Pacemaker sets
CRM_meta_clone_max) and cinder.conf sets [DEFAULT] cluster.  A clone without it would run
the same host@backend on every node, or every node's own backends outside any cluster.
"""

from __future__ import annotations

import socket

from cinder_ocf.checks.context import Context
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import drivers
from cinder_ocf.openstack.conf import NODE_LOCAL, CinderConfig
from cinder_ocf.supervisor import daemon

_PROBE_S = 20.0  # importing the drivers: ~1.2 s for cinder's own, once per change of binary


def validate_mode(ctx: Context, config: CinderConfig) -> None:
    """A primitive with cluster set is a warning; a clone is refused (6) unless it can serve a
    cluster safely: cluster set, a coordination backend that spans the nodes, each node its own
    host, and drivers that declare SUPPORTS_ACTIVE_ACTIVE."""
    if not ctx.env.cloned:
        if config.cluster:
            ctx.log.warning(
                f"{config.source} sets cluster = {config.cluster}, but this cinder-volume is not "
                f"cloned: one node serves the backends, and a failover moves them (active/passive). "
                f"For active/active, clone it (cinder-ocf cluster-config --volume-mode "
                f"active-active prints how); for active/passive, remove cluster"
            )
        return
    # What matters first: crm_mon shows the first 128 characters of an exit reason (and
    # escapes angle brackets twice, so none here).
    if not config.cluster:
        raise OcfError(
            OcfExit.ERR_CONFIGURED,
            f"active/active (cloned) needs [DEFAULT] cluster = NAME in {config.source}: "
            f"without it every node serves the backends alone; or do not clone cinder-volume",
        )
    if config.coordination_scheme in NODE_LOCAL:
        where = f"{config.coordination_scheme}://" if config.coordination_scheme else "unset (file://)"
        raise OcfError(
            OcfExit.ERR_CONFIGURED,
            f"active/active (cloned) needs a [coordination] backend_url all nodes share, not "
            f"{where} in {config.source} (etcd3+http://, redis://, zookeeper://): node-local locks "
            f"let two nodes work on one volume at once",
        )
    _each_node_its_own_host(ctx, config)
    _drivers_support_it(ctx, config)


def _node_names(ctx: Context) -> set[str]:
    names = {socket.gethostname(), socket.getfqdn(), ctx.env.meta.get("on_node", "")}
    return {name for name in names | {n.partition(".")[0] for n in names} if name}


def _each_node_its_own_host(ctx: Context, config: CinderConfig) -> None:
    """In a cinder cluster each node is a host of its own: a host (or backend_host) that is not
    this node's name is the active/passive recipe's one name for all nodes."""
    named = [("host", config.host)] if config.host else []
    named += [(f"[{backend}] backend_host", host) for backend, host in config.backend_hosts if host]
    if not named:
        return  # the recommended form: no name to compare, and no DNS asked (getfqdn)
    names = _node_names(ctx)
    shared = [f"{option} = {host}" for option, host in named if host not in names]
    if shared:
        raise OcfError(
            OcfExit.ERR_CONFIGURED,
            f"active/active (cloned) needs each node its own host: {config.source} sets "
            f"{', '.join(shared)}, not this node's name ({', '.join(sorted(names))}), so every node "
            f"would serve the same host@backend. Remove it (each node then registers under its "
            f"own name, grouped by cluster = {config.cluster})",
        )


def _drivers_support_it(ctx: Context, config: CinderConfig) -> None:
    binary = daemon.find_executable(ctx.params.text("binary"), ctx.env.environ.get("PATH", ""))
    user = daemon.lookup_user(ctx.params.text("user"))
    if binary is None or user is None:
        return  # validate-all said so already
    by_driver: dict[str, list[str]] = {}
    for backend, driver in config.backend_drivers:
        by_driver.setdefault(driver, []).append(backend)
    support = drivers.active_active_support(
        binary, sorted(by_driver), user, ctx.state_path("drivers"), ctx.deadline.cap(_PROBE_S)
    )
    if support.unknown:
        ctx.log.warning(
            f"cannot tell whether the drivers support active/active ({support.unknown}): "
            f"cinder-volume itself refuses a clustered backend whose driver does not"
        )
        return
    missing = [d for d, answer in support.answers.items() if isinstance(answer, str)]
    if missing:
        raise OcfError(
            OcfExit.ERR_INSTALLED,
            f"volume_driver {missing[0]} (backend {', '.join(by_driver[missing[0]])}) cannot be "
            f"imported on this node: {support.answers[missing[0]]}",
        )
    unsafe = [d for d, answer in support.answers.items() if answer is False]
    if unsafe:
        listed = "; ".join(f"{d} (backend {', '.join(by_driver[d])})" for d in unsafe)
        raise OcfError(
            OcfExit.ERR_CONFIGURED,
            f"active/active (cloned) needs drivers that declare SUPPORTS_ACTIVE_ACTIVE, and "
            f"{listed} does not: served from several nodes at once, its volumes would be "
            f"corrupted. Serve these backends active/passive (a primitive, without cluster)",
        )
