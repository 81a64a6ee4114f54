"""ocf:openstack:cinder-backup: the backup service.

Exports: SERVICE, SPEC.

One process (or one per backup_workers) holding connections to the message broker and
reporting to os-services under cinder.conf's host; checked as checks/rpc.py describes.
"""

from __future__ import annotations

from cinder_ocf.agents.rpc import rpc_service, rpc_spec
from cinder_ocf.checks.service_host import GUARD_PARAMETER

SPEC = rpc_spec(
    "cinder-backup",
    "cinder-backup",
    "OpenStack Block Storage backup service (cinder-backup)",
    "Manages cinder-backup, the OpenStack Block Storage backup service, as a Pacemaker resource. "
    "The monitor checks that the process is the one start recorded, that at least one process of "
    "its tree holds a connection to the message broker of transport_url, and, with Keystone "
    "credentials, that it is up in cinder-api's os-services (under cinder.conf's host). A broker "
    "or Keystone outage makes it warn, not fail. As a primitive, it never runs beside another "
    "server of the same host (guard_service_host): a cinder-backup starting cleans up the "
    "host's backups in progress.",
    extra=[GUARD_PARAMETER],
)

SERVICE = rpc_service(SPEC, "cinder-backup", one_server_per_host=True)
