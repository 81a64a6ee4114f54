"""ocf:openstack:cinder-scheduler (and the 2013 name cinder-schedule): the scheduler service.

Exports: SchedulerAgent, ScheduleAgent, SPEC, ALIAS_SPEC.

One process holding connections to the message broker and reporting to os-services under
cinder.conf's host; checked as agents/rpc.py describes.
"""

from __future__ import annotations

from cinder_ocf.agents.rpc import RpcServiceAgent, rpc_spec

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from cinder_ocf.config import CinderConfig

_LONGDESC = (
    "Manages cinder-scheduler, the OpenStack Block Storage scheduler, as a Pacemaker resource "
    "(usually a clone: several schedulers can run at once). The monitor checks that the process "
    "is the one start recorded, that it holds a connection to the message broker of "
    "transport_url, and, with Keystone credentials, that it is up in cinder-api's os-services "
    "(under cinder.conf's host). A broker or Keystone outage makes it warn, not fail."
)

SPEC = rpc_spec(
    "cinder-scheduler", "cinder-scheduler", "OpenStack Block Storage scheduler (cinder-scheduler)", _LONGDESC
)
ALIAS_SPEC = rpc_spec(
    "cinder-schedule",
    "cinder-scheduler",
    "OpenStack Block Storage scheduler (deprecated name: use cinder-scheduler)",
    "Deprecated: the 2013 shell agent's name, kept so that existing resources keep working. Use "
    "ocf:openstack:cinder-scheduler, which is the same agent. " + _LONGDESC,
)


class SchedulerAgent(RpcServiceAgent):
    spec = SPEC
    service_binary = "cinder-scheduler"


class ScheduleAgent(SchedulerAgent):
    spec = ALIAS_SPEC

    def validate_rpc_service(self, config: CinderConfig) -> None:
        self.log.notice_once(
            "cinder-schedule",
            "ocf:openstack:cinder-schedule is deprecated: use ocf:openstack:cinder-scheduler",
        )
