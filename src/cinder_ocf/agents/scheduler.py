"""ocf:openstack:cinder-scheduler (and the 2013 name cinder-schedule): the scheduler service.

Exports: SERVICE, ALIAS_SERVICE, SPEC, ALIAS_SPEC.

One process holding connections to the message broker and reporting to os-services under
cinder.conf's host; checked as checks/rpc.py describes.
"""

from __future__ import annotations

from cinder_ocf.agents.rpc import rpc_service, rpc_spec
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.deep import scheduler_round_trip
from cinder_ocf.openstack.conf import CinderConfig

_LONGDESC = (
    "Manages cinder-scheduler, the OpenStack Block Storage scheduler, as a Pacemaker resource "
    "(usually a clone: several schedulers can run at once). The monitor checks that the process "
    "is the one start recorded, that it holds a connection to the message broker of "
    "transport_url, and, with Keystone credentials, that it is up in cinder-api's os-services "
    "(under cinder.conf's host). A broker or Keystone outage makes it warn, not fail."
)

SPEC = rpc_spec(
    "cinder-scheduler", "cinder-scheduler", "OpenStack Block Storage scheduler (cinder-scheduler)", _LONGDESC,
    deep=True,
)  # fmt: skip
ALIAS_SPEC = rpc_spec(
    "cinder-schedule",
    "cinder-scheduler",
    "OpenStack Block Storage scheduler (deprecated name: use cinder-scheduler)",
    "Deprecated: the 2013 shell agent's name, kept so that existing resources keep working. Use "
    "ocf:openstack:cinder-scheduler, which is the same agent. " + _LONGDESC,
    deep=True,
)


def deprecated_name(ctx: Context, config: CinderConfig) -> None:
    ctx.log.notice_once(
        "cinder-schedule", "ocf:openstack:cinder-schedule is deprecated: use ocf:openstack:cinder-scheduler"
    )


SERVICE = rpc_service(SPEC, "cinder-scheduler", deep_checks=(scheduler_round_trip,))
ALIAS_SERVICE = rpc_service(
    ALIAS_SPEC, "cinder-scheduler", validators=(deprecated_name,), deep_checks=(scheduler_round_trip,)
)
