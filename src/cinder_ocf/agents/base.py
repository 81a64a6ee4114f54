"""What every agent is made of: its Service declaration and the parameters they share.

Exports: Service, Validator, daemon_parameters, standard_actions, CREDENTIAL_PARAMETERS,
REGION_PARAMETER, TOKEN_PARAMETERS, DEEP.

An agent module declares a Service: its meta-data (AgentSpec), its checks in the order they
run (cheapest first), its validators, how it derives its facts from cinder.conf, and the hooks
start needs.  The supervisor (supervisor/lifecycle.py) does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from cinder_ocf.metadata import Action, AgentSpec, Parameter
from cinder_ocf.ocf import OCF_1_1

if TYPE_CHECKING:
    from cinder_ocf.checks import Check
    from cinder_ocf.checks.context import Context
    from cinder_ocf.openstack.conf import CinderConfig
    from cinder_ocf.openstack.facts import Facts

Validator = Callable[["Context", "CinderConfig"], None]

DEEP = 20  # OCF_CHECK_LEVEL of the checks that cross the RPC bus
# The deep checks make up to three requests of check_timeout (10 s) after the others.
DEEP_MONITOR_TIMEOUT_S = 60


class Service(NamedTuple):
    spec: AgentSpec
    checks: Sequence[Check]
    derive_facts: Callable[[Context, CinderConfig], Facts]
    validators: Sequence[Validator] = ()
    # The validators of what the reloadable parameters configure (the checks): reload-agent
    # runs these, validate-all all of them.
    check_validators: Sequence[Validator] = ()
    # Run after the checks by a monitor with OCF_CHECK_LEVEL >= 20, when they found nothing
    # wrong: a round trip through the service itself.
    deep_checks: Sequence[Check] = ()
    # Refuse to start when the service is already provided by someone else.
    before_spawn: Callable[[Context], None] | None = None
    # In start, called with the reason of a failed check: raise OcfError to give up now
    # rather than wait for the op timeout.
    give_up: Callable[[Context, str], None] | None = None
    uses_token: bool = True  # get a token while the daemon boots
    wants_endpoint: bool = False  # the checks use the catalog's volume endpoint (the region matters)
    os_services_binary: str = ""  # the binary column of os-services


_CHECK_TIMEOUT_DESC = (
    "How long one health check request may take before the service counts as hung. It is also "
    "capped by the operation's own timeout, so the agent always answers before Pacemaker would "
    "kill it."
)


def daemon_parameters(binary: str, check_timeout_desc: str = _CHECK_TIMEOUT_DESC) -> list[Parameter]:
    return [
        Parameter(
            "binary", f"{binary} executable",
            f"The {binary} program: a name looked up in PATH, or an absolute path (for example "
            f"the bin directory of a virtualenv).",
            default=binary,
        ),
        Parameter(
            "config", "cinder.conf path",
            "The cinder configuration file. The daemon is started with --config-file pointing "
            "at it, and the agent reads the same file for the listen address, the Keystone "
            "credentials and the message broker.",
            default="/etc/cinder/cinder.conf",
        ),
        Parameter(
            "user", "User the daemon runs as",
            f"The system account {binary} runs as. It must exist and be able to read the "
            f"configuration file.",
            default="cinder",
        ),
        Parameter(
            "pid", "Pid file",
            "Where the agent records the daemon's identity (pid, start time, executable). It "
            "must be in a directory only root can write to.",
            default="${HA_RSCTMP}/${OCF_RESOURCE_INSTANCE}.pid",
        ),
        Parameter(
            "console_log", "Daemon output file",
            f"File that receives what {binary} writes to standard output and error (start-up "
            f"errors, tracebacks). Empty: /var/log/cinder/cinder-ocf-<instance>.console.log "
            f"when /var/log/cinder exists, else cinder-ocf-<instance>.console.log in HA_RSCTMP."
        ),
        Parameter(
            "additional_parameters", "Additional command-line arguments",
            f"Extra arguments for {binary}, split like a shell would split them (quotes "
            f"respected) but never run through a shell. --config-file and --config-dir given "
            f"here are read by the agent too.",
        ),
        Parameter(
            "check_timeout", "Seconds each health check may take", check_timeout_desc,
            type="integer", default="10", minimum=1, maximum=3600, reloadable=True,
        ),
    ]  # fmt: skip


def standard_actions(start_stop_s: int = 60, validate_s: int = 20, deep: bool = False) -> tuple[Action, ...]:
    """The OCF actions every agent has, with its default timeouts (seconds).  deep: the agent
    has depth-20 checks (Service.deep_checks), declared as a second monitor to OCF 1.1 callers
    (pcs then creates it with OCF_CHECK_LEVEL=20 by default)."""
    actions = [
        Action("start", start_stop_s),
        Action("stop", start_stop_s),
        Action("monitor", 30, interval=10, depth=0),
        Action("status", 20),
        Action("validate-all", validate_s),
        Action("reload-agent", 20, since=OCF_1_1),
        Action("meta-data", 5),
    ]
    if deep:
        actions.insert(3, Action("monitor", DEEP_MONITOR_TIMEOUT_S, interval=60, depth=DEEP, since=OCF_1_1))
    return tuple(actions)


CREDENTIAL_PARAMETERS = [
    Parameter(
        "os_auth_url", "Keystone URL",
        "Keystone's URL for the monitor's token (v3; a /v2.0 URL is mapped to /v3). Empty: "
        "auth_url of [keystone_authtoken] in cinder.conf.",
        reloadable=True,
    ),
    Parameter(
        "os_username", "Monitoring user",
        "Keystone user the monitor authenticates as. When no os_* credential and no os_cloud "
        "is set, the monitor uses cinder's own service credentials from [keystone_authtoken].",
        reloadable=True,
    ),
    Parameter(
        "os_password", "Monitoring user's password",
        "Password of os_username. Never logged; the token it gets is cached 0600 in HA_RSCTMP. "
        "Prefer os_cloud or cinder.conf: a parameter is stored in the CIB.",
        secret=True,
        reloadable=True,
    ),
    Parameter(
        "os_project_name", "Monitoring project",
        "Keystone project the monitor's token is scoped to (with os_username and os_password).",
        reloadable=True,
    ),
    Parameter(
        "os_user_domain_name", "Domain of os_username",
        "Keystone domain of os_username: Default unless the user lives in another domain.",
        default="Default",
        reloadable=True,
    ),
    Parameter(
        "os_project_domain_name", "Domain of os_project_name",
        "Keystone domain of os_project_name: Default unless the project lives in another domain.",
        default="Default",
        reloadable=True,
    ),
    Parameter(
        "os_application_credential_id", "Application credential id",
        "Authenticate with a Keystone application credential instead of a password.",
        reloadable=True,
    ),
    Parameter(
        "os_application_credential_secret", "Application credential secret",
        "Secret of os_application_credential_id. Never logged.", secret=True,
        reloadable=True,
    ),
    Parameter(
        "os_cloud", "clouds.yaml entry",
        "Name of a cloud in clouds.yaml (OS_CLIENT_CONFIG_FILE, /etc/openstack/clouds.yaml, "
        "/root/.config/openstack/clouds.yaml) holding the monitor's credentials.",
        reloadable=True,
    ),
    Parameter(
        "ca_file", "CA bundle",
        "CA certificates to verify Keystone's and cinder-api's TLS certificates with "
        "(default: the system's, or cafile of [keystone_authtoken]).",
        reloadable=True,
    ),
    Parameter(
        "insecure", "Skip TLS verification",
        "Do not verify TLS certificates. For tests only: it lets anyone in the middle answer "
        "the monitor.",
        type="boolean", default="false",
        reloadable=True,
    ),
    Parameter(
        "os_tenant_name", "Monitoring project (2013 name)",
        "The 2013 shell agent's name of os_project_name.", replaced_by="os_project_name",
        reloadable=True,
    ),
    Parameter(
        "keystone_get_token_url", "Keystone token URL (2013 name)",
        "The 2013 shell agent's Keystone v2 token URL, mapped to the v3 endpoint of the same "
        "Keystone. Empty: from cinder.conf.",
        replaced_by="os_auth_url",
        reloadable=True,
    ),
]  # fmt: skip

REGION_PARAMETER = Parameter(
    "os_region_name", "Region of the volume endpoint",
    "Keystone region whose block-storage (volumev3) endpoint the monitor asks when url is "
    "empty. Empty: region_name of clouds.yaml (with os_cloud) or of [keystone_authtoken]; "
    "when none is set either, the catalog's first volumev3 endpoint, which in a multi-region "
    "cloud may belong to another region: set this, or url.",
    reloadable=True,
)  # fmt: skip

# What the monitor's token derives from (with cinder.conf and clouds.yaml): a change of any
# other parameter (check_timeout, url, applied by reload-agent) keeps the cached token.
TOKEN_PARAMETERS = frozenset(param.name for param in (*CREDENTIAL_PARAMETERS, REGION_PARAMETER))
