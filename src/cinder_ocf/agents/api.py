"""ocf:openstack:cinder-api: the Block Storage API, judged by its answers, not by its pid.

Exports: SERVICE, SPEC.

Health, cheapest first: the process is ours; an authenticated GET /v3/{project}/types is
answered 200 with a Keystone token cached per resource.  Without a cached token GET / (300,
the version list, needs no token) is asked first, before Keystone is.  Keystone's trouble is
never cinder-api's: with Keystone down the monitor answers 0 and warns while GET / answers.
"""

from __future__ import annotations

from cinder_ocf.agents.base import CREDENTIAL_PARAMETERS, Service, daemon_parameters, standard_actions
from cinder_ocf.checks.api import api_authenticated, api_base, api_root
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.deep import api_rpc_bus
from cinder_ocf.checks.tokens import plain_get, validate_credentials
from cinder_ocf.metadata import AgentSpec, Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import http
from cinder_ocf.openstack.conf import CinderConfig
from cinder_ocf.openstack.facts import Facts

SPEC = AgentSpec(
    name="cinder-api",
    version="1.0",
    shortdesc="OpenStack Block Storage API (cinder-api)",
    longdesc=(
        "Manages cinder-api, the OpenStack Block Storage API, as a Pacemaker resource, usually "
        "a clone behind a virtual IP. The monitor checks that the process started is still the "
        "same process, that the API answers GET / and, with a Keystone token, an authenticated "
        "request. A Keystone outage makes the monitor warn, not fail: restarting cinder-api "
        "would not help. start returns once the API answers; stop ends the whole process tree."
    ),
    parameters=(
        *daemon_parameters("cinder-api"),
        Parameter(
            "url",
            "API URL to check",
            "Base URL of this node's cinder-api (scheme, host, port). Empty: built from "
            "osapi_volume_listen and osapi_volume_listen_port of cinder.conf, a wildcard "
            "address meaning loopback. A path such as the 2013 agent's /v1/ is ignored: the "
            "root and /v3 are checked.",
            reloadable=True,
        ),
        *CREDENTIAL_PARAMETERS,
    ),
    actions=standard_actions(deep=True),
)


def derive_facts(ctx: Context, config: CinderConfig) -> Facts:
    return Facts(api_url=config.api_url)


def validate(ctx: Context, config: CinderConfig) -> None:
    validate_credentials(ctx, "the monitor checks GET / only")


def nobody_else_answers(ctx: Context) -> None:
    """A second cinder-api on the same port would share it (SO_REUSEPORT): refuse."""
    base = api_base(ctx)
    try:
        answer = plain_get(ctx, base + "/")
    except http.HttpError:
        return
    raise OcfError(
        OcfExit.ERR_GENERIC,
        f"something not started by this resource already answers at {base} (HTTP "
        f"{answer.status}); refusing to start a second cinder-api on the same port",
    )


SERVICE = Service(
    spec=SPEC,
    checks=(api_root, api_authenticated),
    derive_facts=derive_facts,
    check_validators=(validate,),
    deep_checks=(api_rpc_bus,),
    before_spawn=nobody_else_answers,
)
