"""`cinder-ocf`: the agents for people: install them, check a resource by hand, document them,
write the cluster configuration.

Exports: main.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from cinder_ocf.agents import AGENTS, service
from cinder_ocf.checks import Status, run_checks
from cinder_ocf.clusterconfig import (
    ACTIVE_PASSIVE,
    CONSTRAINT_FORMS,
    INDEPENDENT,
    SERVICE_ORDER,
    VOLUME_MODES,
    ClusterPlan,
    config_notes,
    crm_configuration,
    pcs_commands,
    shell_lines,
)
from cinder_ocf.log import Logger
from cinder_ocf.metadata import render_metadata
from cinder_ocf.ocf import Environment, OcfError, OcfExit

DEFAULT_PROVIDER_DIR = "/usr/lib/ocf/resource.d/openstack"
AGENT_SCRIPT = """\
#!{python}
# OCF resource agent ocf:openstack:{name}; the logic lives in the cinder_ocf package.
from cinder_ocf.agents import main

main("{name}")
"""


def agent_script(name: str, python: str) -> str:
    return AGENT_SCRIPT.format(python=python, name=name)


def install_agents(directory: str, python: str) -> list[str]:
    """Write one executable per agent into an OCF provider directory, bound to python."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    written = []
    for name in sorted(AGENTS):
        path = os.path.join(directory, name)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(agent_script(name, python))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        written.append(path)
    return written


def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param wants name=value, not {pair!r}")
        params[name] = value
    return params


def check(name: str, params: dict[str, str], stream: TextIO = sys.stdout) -> int:
    """Run the monitor's steps one by one and say what each found and how long it took."""
    environ = dict(os.environ)
    environ.pop("HA_LOGFACILITY", None)
    environ.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    environ.setdefault("OCF_RESOURCE_INSTANCE", name)
    environ["OCF_RESKEY_CRM_meta_interval"] = "10000"
    env = Environment("monitor", environ)
    log = Logger(f"{name}({env.instance})", environ, stream=sys.stderr)
    started = time.monotonic()
    # Here, not at the top: install-agents, meta-data and cluster-config need no psutil.
    from cinder_ocf.supervisor.lifecycle import Supervisor  # noqa: PLC0415

    try:
        supervisor = Supervisor(service(name), env, log, strict=False)
        view = supervisor.ctx.processes
        elapsed = time.monotonic() - started
        if view.running:
            detail = f"pid {view.leader.pid} and {len(view.members) - 1} more, in {supervisor.pid_path}"
            _report(stream, "ok", "process", elapsed, detail)
        elif view.orphaned:
            _report(stream, "failed", "process", elapsed, supervisor.orphan_reason())
            return OcfExit.ERR_GENERIC
        else:
            _report(stream, "stopped", "process", elapsed, view.note)
            return OcfExit.NOT_RUNNING
        results = run_checks(supervisor.ctx, supervisor.service.checks)
    except OcfError as err:
        print(f"[ error  ] {err.reason}", file=stream)
        return err.code
    for result in results:
        _report(stream, result.status.value, result.name, result.seconds, log.redact(result.detail))
    failed = any(r.status is Status.FAILED for r in results)
    total = (time.monotonic() - started) * 1000
    print(f"monitor would answer {1 if failed else 0} ({total:.0f} ms in all)", file=stream)
    return OcfExit.ERR_GENERIC if failed else OcfExit.SUCCESS


def _report(stream: TextIO, status: str, name: str, seconds: float, detail: str) -> None:
    print(f"[ {status:<8} ] {name:<10} {seconds * 1000:7.1f} ms  {detail}", file=stream)


def parameter_reference(name: str) -> str:
    """Markdown table of an agent's parameters, from its meta-data (the README's reference)."""
    spec = service(name).spec
    head = "| parameter | default | change applied by | description |"
    rows = [f"### {name}", "", head, "|---|---|---|---|"]
    for param in spec.parameters:
        text = " ".join(param.longdesc.split()).replace("|", "\\|")
        if param.replaced_by:
            text += f" Deprecated: use {param.replaced_by}."
        elif param.deprecated:
            text += f" Deprecated: {param.deprecated}."
        default = f"`{param.default}`" if param.default else ""
        applied = "reload" if param.reloadable else "restart"
        rows.append(f"| `{param.name}` | {default} | {applied} | {text} |")
    return "\n".join(rows) + "\n"


def _cluster_config_parser(sub: Any) -> None:
    cfg = sub.add_parser(
        "cluster-config",
        help="print the pcs commands or crm configuration for cinder's resources",
        description="The OpenStack HA guide's configuration of cinder with these agents: pcs "
        "commands (pcs 0.10+ syntax) or the crm shell's configuration (crm configure load "
        "update FILE). Notes about cinder.conf go to stderr.",
    )
    cfg.add_argument("--config", default="/etc/cinder/cinder.conf", help="cinder.conf of every node")
    cfg.add_argument("--format", choices=("pcs", "crm"), default="pcs")
    cfg.add_argument("--services", default="cinder-api,cinder-scheduler,cinder-volume",
                     help=f"comma-separated, from {','.join(SERVICE_ORDER)}")  # fmt: skip
    cfg.add_argument("--vip", default="", help="virtual IP of the Block Storage API (IPaddr2)")
    cfg.add_argument("--cidr-netmask", type=int, default=24)
    cfg.add_argument("--monitor-interval", type=int, default=10, metavar="SECONDS")
    cfg.add_argument("--deep-monitor-interval", type=int, default=60, metavar="SECONDS",
                     help="of the second monitor, OCF_CHECK_LEVEL=20: a round trip over the RPC bus "
                          "(cinder-api, cinder-scheduler, cinder-volume); 0: none")  # fmt: skip
    cfg.add_argument("--constraints", choices=CONSTRAINT_FORMS, default=INDEPENDENT,
                     help="independent (default): Optional orders and no colocation between the "
                          "services, so a failed one restarts no neighbour; guide: the HA guide's "
                          "Mandatory orders and colocations")  # fmt: skip
    cfg.add_argument("--volume-mode", choices=VOLUME_MODES, default=ACTIVE_PASSIVE,
                     help="active-passive (default): one cinder-volume for the cluster, moved on "
                          "failure; active-active: cloned, every node serving the backends in "
                          "one cinder cluster (cinder.conf's cluster)")  # fmt: skip
    cfg.add_argument("--os-cloud", default="",
                     help="clouds.yaml entry for the monitors (default: cinder.conf's)")  # fmt: skip
    cfg.add_argument("--param", action="append", default=[], metavar="SERVICE:NAME=VALUE",
                     help="another resource parameter, e.g. cinder-volume:start_grace=120")  # fmt: skip


def cluster_config(args: argparse.Namespace) -> int:
    params: dict[str, dict[str, str]] = {}
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    if args.os_cloud:
        for service in services:
            params.setdefault(service, {})["os_cloud"] = args.os_cloud
    for item in args.param:
        service, sep, pair = item.partition(":")
        if not sep:
            raise SystemExit(f"--param wants SERVICE:NAME=VALUE, not {item!r}")
        params.setdefault(service, {}).update(_parse_params([pair]))
    try:
        plan = ClusterPlan(args.config, services, vip=args.vip, cidr_netmask=args.cidr_netmask,
                           monitor_interval_s=args.monitor_interval, params=params,
                           deep_monitor_interval_s=args.deep_monitor_interval,
                           constraints=args.constraints, volume_mode=args.volume_mode)  # fmt: skip
    except ValueError as err:
        raise SystemExit(f"cinder-ocf cluster-config: {err}") from None
    for note in config_notes(plan):
        print(f"# NOTE: {note}", file=sys.stderr)
    if args.format == "crm":
        sys.stdout.write(crm_configuration(plan))
    else:
        sys.stdout.write(shell_lines(pcs_commands(plan)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cinder-ocf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install-agents", help="install the agents into an OCF provider directory")
    inst.add_argument("directory", nargs="?", default=DEFAULT_PROVIDER_DIR)
    inst.add_argument("--python", default=sys.executable,
                      help="interpreter that has cinder_ocf (default: this one)")  # fmt: skip
    chk = sub.add_parser("check", help="run a monitor by hand and show each check")
    chk.add_argument("agent", choices=sorted(AGENTS))
    chk.add_argument("--config", help="cinder.conf (default /etc/cinder/cinder.conf)")
    chk.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a resource parameter, as in the CIB (repeatable)")  # fmt: skip
    chk.add_argument("--instance", help="resource id (names the pid file and the caches)")
    meta = sub.add_parser("meta-data", help="print an agent's meta-data")
    meta.add_argument("agent", choices=sorted(AGENTS))
    sub.add_parser("parameter-reference", help="print the parameter tables (Markdown)")
    _cluster_config_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "install-agents":
        for path in install_agents(args.directory, args.python):
            print(path)
        return 0
    if args.command == "meta-data":
        sys.stdout.write(render_metadata(service(args.agent).spec))
        return 0
    if args.command == "parameter-reference":
        print("\n".join(parameter_reference(name) for name in sorted(AGENTS)))
        return 0
    if args.command == "cluster-config":
        return cluster_config(args)
    params = _parse_params(args.param)
    if args.config:
        params["config"] = args.config
    if args.instance:
        os.environ["OCF_RESOURCE_INSTANCE"] = args.instance
    return check(args.agent, params)


if __name__ == "__main__":
    sys.exit(main())
