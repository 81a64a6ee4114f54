"""The OpenStack HA guide's Pacemaker configuration for cinder, with these agents in place of
the systemd units: pcs commands and the crm shell's configuration, from one plan.

Exports: ClusterPlan, pcs_commands, crm_configuration, shell_lines, config_notes, SERVICE_ORDER,
CONSTRAINT_FORMS, VOLUME_MODES.

The shape (the guide's): cinder-api and cinder-scheduler run everywhere as interleaved
clones, cinder-volume (and cinder-backup) as one instance; the scheduler starts after the
API, cinder-volume after the scheduler; the virtual IP runs with an API instance and after
it.  The RPC services share one service host (cinder.conf [DEFAULT] host), so that a volume
service moved to another node is the same row of os-services.

The guide's orders are Mandatory and its services colocated with what they start after: a
failed cinder-api then stops and starts the scheduler and cinder-volume too, and the fresh
scheduler, which has not heard the volume service yet, fails the creates meanwhile.  Yet
cinder-scheduler needs no cinder-api on its node, nor cinder-volume a scheduler: they meet
on the message bus.  So by default the orders are Optional (kept when both start together,
as when the cluster starts, and no restart of one forces the other's) and only the VIP is
colocated, with an API; `constraints="guide"` prints the guide's exact form.

`volume_mode="active-active"` clones cinder-volume too, every node serving the backends in one
cinder cluster (cinder.conf's `cluster`, a shared lock manager, each node its own host, drivers
that declare SUPPORTS_ACTIVE_ACTIVE: what agents/active_active.py refuses without), ordered
after the scheduler's clone the same way; the notes give the cinder.conf lines it needs.

pcs 0.10 and later (RHEL 8/9, Debian 11/12) want `clone interleave=true`, not the guide's
`--clone interleave=true`.  No password ever goes into a command: pcs shows resource
parameters to anyone who can read the CIB, so credentials come from cinder.conf or os_cloud.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from cinder_ocf.openstack.conf import NODE_LOCAL, CinderConfig, ConfigProblem, load_config

SERVICE_ORDER = ("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup")
CLONED = ("cinder-api", "cinder-scheduler")
VIP_ID = "vip"
# Each service after the one it needs (and, in the guide's form, with it).
DEPENDS_ON = {"cinder-scheduler": "cinder-api", "cinder-volume": "cinder-scheduler",
              "cinder-backup": "cinder-scheduler"}  # fmt: skip
SECRET_PARAMETERS = ("os_password", "os_application_credential_secret")
# The agents with depth-20 checks (their Service.deep_checks; a unit test holds the two
# together): a second monitor with OCF_CHECK_LEVEL=20 crosses the RPC bus.
DEEP_MONITORED = ("cinder-api", "cinder-scheduler", "cinder-volume")
DEEP_MONITOR_TIMEOUT_S = 60  # as the agents' meta-data advises (the same unit test)
# How the services are bound to what they start after: see the module's docstring.
INDEPENDENT = "independent"
GUIDE = "guide"
CONSTRAINT_FORMS = (INDEPENDENT, GUIDE)
ACTIVE_PASSIVE = "active-passive"
ACTIVE_ACTIVE = "active-active"
VOLUME_MODES = (ACTIVE_PASSIVE, ACTIVE_ACTIVE)


class ClusterPlan:
    """What to configure: which services, with which parameters, behind which VIP."""

    def __init__(
        self,
        config: str,
        services: Sequence[str] = SERVICE_ORDER[:3],
        vip: str = "",
        cidr_netmask: int = 24,
        monitor_interval_s: int = 10,
        monitor_timeout_s: int = 30,
        params: Mapping[str, Mapping[str, str]] | None = None,
        deep_monitor_interval_s: int = 60,
        constraints: str = INDEPENDENT,
        volume_mode: str = ACTIVE_PASSIVE,
    ) -> None:
        """deep_monitor_interval_s: of the depth-20 monitor (0: none); constraints: one of
        CONSTRAINT_FORMS; volume_mode: one of VOLUME_MODES."""
        if constraints not in CONSTRAINT_FORMS:
            raise ValueError(f"constraints {constraints!r}: choose from {', '.join(CONSTRAINT_FORMS)}")
        if volume_mode not in VOLUME_MODES:
            raise ValueError(f"volume mode {volume_mode!r}: choose from {', '.join(VOLUME_MODES)}")
        unknown = [s for s in services if s not in SERVICE_ORDER]
        if unknown:
            raise ValueError(f"unknown services {unknown}: choose from {', '.join(SERVICE_ORDER)}")
        if "cinder-api" not in services and (vip or any(DEPENDS_ON.get(s) == "cinder-api" for s in services)):
            raise ValueError("the VIP and cinder-scheduler go with cinder-api: include it")
        secrets = [f"{s}: {p}" for s, ps in (params or {}).items() for p in ps if p in SECRET_PARAMETERS]
        if secrets:
            raise ValueError(
                f"no secret on a command line or in the CIB ({', '.join(secrets)}): put the "
                f"credentials in cinder.conf [keystone_authtoken] or a clouds.yaml (os_cloud)"
            )
        self.config = config
        self.services = [s for s in SERVICE_ORDER if s in services]
        self.vip = vip
        self.cidr_netmask = cidr_netmask
        self.monitor_interval_s = monitor_interval_s
        self.monitor_timeout_s = monitor_timeout_s
        self.deep_monitor_interval_s = deep_monitor_interval_s
        self.constraints = constraints
        self.volume_mode = volume_mode
        self.params: dict[str, dict[str, str]] = {s: dict((params or {}).get(s, {})) for s in self.services}

    def cloned(self, service: str) -> bool:
        return service in CLONED or (service == "cinder-volume" and self.volume_mode == ACTIVE_ACTIVE)

    def resource_id(self, service: str) -> str:
        """What constraints name: the clone of a cloned service, else the primitive."""
        return f"{service}-clone" if self.cloned(service) else service

    def resource_params(self, service: str) -> list[tuple[str, str]]:
        return [("config", self.config), *sorted(self.params[service].items())]

    def monitors(self, service: str) -> list[list[str]]:
        """The monitor operations of service, each as name=value words after `op monitor`."""
        found = [[f"interval={self.monitor_interval_s}s", f"timeout={self.monitor_timeout_s}s"]]
        if self.deep_monitor_interval_s and service in DEEP_MONITORED:
            found.append([f"interval={self.deep_monitor_interval_s}s", f"timeout={DEEP_MONITOR_TIMEOUT_S}s",
                          "OCF_CHECK_LEVEL=20"])  # fmt: skip
        return found

    def dependencies(self) -> list[tuple[str, str]]:
        """(service, what it starts after), in start order."""
        return [(s, DEPENDS_ON[s]) for s in self.services if DEPENDS_ON.get(s) in self.services]

    @property
    def colocated(self) -> bool:
        """Whether a service runs only where what it starts after runs (the guide's form)."""
        return self.constraints == GUIDE

    @property
    def order_kind(self) -> str:
        return "Mandatory" if self.constraints == GUIDE else "Optional"


def pcs_commands(plan: ClusterPlan) -> list[list[str]]:
    """The pcs commands, in order, as argument lists.

    Everything but cinder-api is created disabled and enabled once its constraints exist, so
    that no service starts before what it needs, or on a node it must not run on.
    """
    interval = f"interval={plan.monitor_interval_s}s"
    commands = []
    later = []
    for service in plan.services:
        argv = ["pcs", "resource", "create", service, f"ocf:openstack:{service}"]
        argv += [f"{name}={value}" for name, value in plan.resource_params(service)]
        argv.append("op")
        for words in plan.monitors(service):
            argv += ["monitor", *words]
        if plan.cloned(service):
            argv += ["clone", "interleave=true"]
        if service != "cinder-api":
            argv.append("--disabled")
            later.append(service)
        commands.append(argv)
    for service, needed in plan.dependencies():
        first, then = plan.resource_id(needed), plan.resource_id(service)
        commands.append(
            ["pcs", "constraint", "order", "start", first, "then", then, f"kind={plan.order_kind}"]
        )
        if plan.colocated:
            commands.append(["pcs", "constraint", "colocation", "add", then, "with", first])
    if plan.vip:
        commands.append([
            "pcs", "resource", "create", VIP_ID, "ocf:heartbeat:IPaddr2", f"ip={plan.vip}",
            f"cidr_netmask={plan.cidr_netmask}", "op", "monitor", interval, "--disabled",
        ])  # fmt: skip
        api = plan.resource_id("cinder-api")
        commands.append(["pcs", "constraint", "order", "start", api, "then", VIP_ID])
        commands.append(["pcs", "constraint", "colocation", "add", VIP_ID, "with", api])
        later.append(VIP_ID)
    if later:
        commands.append(["pcs", "resource", "enable", *later])
    return commands


def crm_configuration(plan: ClusterPlan) -> str:
    """The same configuration for `crm configure load update FILE` (crmsh)."""
    interval = f"interval={plan.monitor_interval_s}s"
    names = {s: f"p_{s}" for s in plan.services}
    names.update({s: f"cl_{s}" for s in plan.services if plan.cloned(s)})
    lines = []
    for service in plan.services:
        params = " ".join(f"{name}={_crm_quote(value)}" for name, value in plan.resource_params(service))
        ops = " \\\n".join(f"    op monitor {' '.join(words)}" for words in plan.monitors(service))
        lines.append(f"primitive p_{service} ocf:openstack:{service} \\\n    params {params} \\\n{ops}")
    for service in plan.services:
        if plan.cloned(service):
            lines.append(f"clone cl_{service} p_{service} \\\n    meta interleave=true")
    for service, needed in plan.dependencies():
        lines.append(f"order o_{needed}_before_{service} {plan.order_kind}: {names[needed]} {names[service]}")
        if plan.colocated:
            lines.append(f"colocation c_{service}_with_{needed} inf: {names[service]} {names[needed]}")
    if plan.vip:
        api = names["cinder-api"]
        lines.append(
            f"primitive p_{VIP_ID} ocf:heartbeat:IPaddr2 \\\n"
            f"    params ip={plan.vip} cidr_netmask={plan.cidr_netmask} \\\n"
            f"    op monitor {interval}"
        )
        lines.append(f"order o_cinder-api_before_{VIP_ID} Mandatory: {api} p_{VIP_ID}")
        lines.append(f"colocation c_{VIP_ID}_with_cinder-api inf: p_{VIP_ID} {api}")
    return "\n".join(lines) + "\n"


def _crm_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "/._-:@,+" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shell_lines(commands: Sequence[Sequence[str]]) -> str:
    """The commands as a person would type them."""
    return "".join(shlex.join(argv) + "\n" for argv in commands)


def config_notes(plan: ClusterPlan) -> list[str]:
    """What in cinder.conf would make this configuration fail, for the operator to fix first."""

    try:
        config = load_config([plan.config])
    except ConfigProblem as err:
        return [f"cannot read {plan.config}: {err.reason}"]
    notes = []
    rpc = [s for s in plan.services if s != "cinder-api"]
    volume = "cinder-volume" in plan.services
    if volume and plan.volume_mode == ACTIVE_ACTIVE:
        return active_active_notes(config) + _credential_notes(plan, config)
    unnamed = [b for b, host in config.backend_hosts if not host] if volume else []
    others = [s for s in rpc if s != "cinder-volume"]
    if not config.host and (unnamed or others or (volume and not config.enabled_backends)):
        who = ", ".join(
            [*others, *(["cinder-volume (backends " + ", ".join(unnamed) + ")"] if unnamed else [])]
        )
        notes.append(
            f"[DEFAULT] host is not set: {who or 'cinder-volume'} would register under each node's "
            f"own name, so after a failover the volumes created through one node have no service "
            f"(they stay with the other node's name) and a moved service is a different, down "
            f"one. Set the same host on every node (e.g. host = cinder-cluster), or backend_host "
            f"in each backend's section."
        )
    if volume and not config.enabled_backends:
        notes.append("[DEFAULT] enabled_backends is empty: cinder-volume would not start")
    if volume and config.coordination_scheme in NODE_LOCAL:
        where = "unset: cinder's default, file://$state_path" if not config.coordination_scheme else "file://"
        notes.append(
            f"[coordination] backend_url is {where}: node-local locks, which do not span nodes. "
            f"Enough for active/passive, where one node at a time runs cinder-volume (the agent "
            f"refuses a second server of a service host); a cluster-wide lock manager (etcd, "
            f"Redis, ZooKeeper through tooz) is needed for anything more."
        )
    return notes + _credential_notes(plan, config)


def _credential_notes(plan: ClusterPlan, config: CinderConfig) -> list[str]:
    section = config.keystone_authtoken
    keystone = section.auth_url or section.www_authenticate_uri
    has_password = section.username and section.password and keystone
    has_app_credential = section.application_credential_id and section.application_credential_secret
    cloud = any("os_cloud" in plan.params[s] for s in plan.services)
    if has_password or has_app_credential or cloud:
        return []
    return [
        "[keystone_authtoken] has no usable credentials and no os_cloud is given: the "
        "monitors check processes and connections only, not the API's answers or the "
        "services' heartbeats"
    ]


def active_active_notes(config: CinderConfig) -> list[str]:
    """cinder.conf's lines for cinder-volume cloned, and what it sets against them."""
    notes = [
        "cinder.conf on every node, for active/active cinder-volume: [DEFAULT] cluster = <one "
        "name for all nodes>, and no host (each node registers its backends under its own "
        "name); [coordination] backend_url = a lock manager all nodes share (etcd3+http://"
        "<etcd>:2379, redis://, zookeeper://); each backend's volume_driver one that declares "
        "SUPPORTS_ACTIVE_ACTIVE (RBD, PowerMax, NetApp ONTAP, Pure, ...). The agent refuses a "
        "clone without these (validate-all, start: exit 6)."
    ]
    if not config.cluster:
        notes.append(f"{config.source} sets no [DEFAULT] cluster: the clone would be refused")
    if config.coordination_scheme in NODE_LOCAL:
        notes.append(
            f"{config.source}'s [coordination] backend_url is node-local "
            f"({config.coordination_scheme or 'unset'}): the clone would be refused"
        )
    named = [f"host = {config.host}"] if config.host else []
    named += [f"[{b}] backend_host = {h}" for b, h in config.backend_hosts if h]
    if named:
        notes.append(
            f"{config.source} sets {', '.join(named)}: one name on every node, which active/active "
            f"refuses unless it is each node's own name"
        )
    return notes
