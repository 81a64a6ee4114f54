"""What every agent with an authenticated check shares: its Keystone credentials and token.

Exports: TokenAgent, CREDENTIAL_PARAMETERS, REGION_PARAMETER.

Credentials come from ``os_cloud`` (clouds.yaml), the ``os_*`` parameters, or, when none is
set, cinder's own ``[keystone_authtoken]``.  The token (and the catalog's block-storage
endpoint that came with it) is cached per resource in HA_RSCTMP and reused until shortly
before it expires, so Keystone sees one request per token lifetime, not one per monitor.
Keystone's trouble is never the service's: callers report it as DEGRADED.
"""

from __future__ import annotations

import os

from cinder_ocf import auth, httpclient
from cinder_ocf.checks import DEGRADED, OK, SKIPPED
from cinder_ocf.daemon import DaemonAgent
from cinder_ocf.metadata import Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.statefile import StateFileError, read_state, write_state

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

CREDENTIAL_PARAMETERS = [
    Parameter(
        "os_auth_url", "Keystone URL",
        "Keystone's URL for the monitor's token (v3; a /v2.0 URL is mapped to /v3). Empty: "
        "auth_url of [keystone_authtoken] in cinder.conf.",
    ),
    Parameter(
        "os_username", "Monitoring user",
        "Keystone user the monitor authenticates as. When no os_* credential and no os_cloud "
        "is set, the monitor uses cinder's own service credentials from [keystone_authtoken].",
    ),
    Parameter(
        "os_password", "Monitoring user's password",
        "Password of os_username. Never logged; the token it gets is cached 0600 in HA_RSCTMP. "
        "Prefer os_cloud or cinder.conf: a parameter is stored in the CIB.",
        secret=True,
    ),
    Parameter(
        "os_project_name", "Monitoring project",
        "Keystone project the monitor's token is scoped to (with os_username and os_password).",
    ),
    Parameter(
        "os_user_domain_name", "Domain of os_username",
        "Keystone domain of os_username: Default unless the user lives in another domain.",
        default="Default",
    ),
    Parameter(
        "os_project_domain_name", "Domain of os_project_name",
        "Keystone domain of os_project_name: Default unless the project lives in another domain.",
        default="Default",
    ),
    Parameter(
        "os_application_credential_id", "Application credential id",
        "Authenticate with a Keystone application credential instead of a password.",
    ),
    Parameter(
        "os_application_credential_secret", "Application credential secret",
        "Secret of os_application_credential_id. Never logged.", secret=True,
    ),
    Parameter(
        "os_cloud", "clouds.yaml entry",
        "Name of a cloud in clouds.yaml (OS_CLIENT_CONFIG_FILE, /etc/openstack/clouds.yaml, "
        "/root/.config/openstack/clouds.yaml) holding the monitor's credentials.",
    ),
    Parameter(
        "ca_file", "CA bundle",
        "CA certificates to verify Keystone's and cinder-api's TLS certificates with "
        "(default: the system's, or cafile of [keystone_authtoken]).",
    ),
    Parameter(
        "insecure", "Skip TLS verification",
        "Do not verify TLS certificates. For tests only: it lets anyone in the middle answer "
        "the monitor.",
        type="boolean", default="false",
    ),
    Parameter(
        "os_tenant_name", "Monitoring project (2013 name)",
        "The 2013 shell agent's name of os_project_name.", replaced_by="os_project_name",
    ),
    Parameter(
        "keystone_get_token_url", "Keystone token URL (2013 name)",
        "The 2013 shell agent's Keystone v2 token URL, mapped to the v3 endpoint of the same "
        "Keystone. Empty: from cinder.conf.",
        replaced_by="os_auth_url",
    ),
]  # fmt: skip

REGION_PARAMETER = Parameter(
    "os_region_name", "Region of the volume endpoint",
    "Keystone region whose block-storage (volumev3) endpoint the monitor asks when url is "
    "empty. Empty: region_name of clouds.yaml (with os_cloud) or of [keystone_authtoken]; "
    "when none is set either, the catalog's first volumev3 endpoint, which in a multi-region "
    "cloud may belong to another region: set this, or url.",
)  # fmt: skip

_CREDENTIAL_NAMES = ("os_username", "os_password", "os_project_name", "os_application_credential_id",
                     "os_application_credential_secret")  # fmt: skip


class TokenAgent(DaemonAgent):
    """A DaemonAgent whose checks call an OpenStack API with a cached Keystone token."""

    # Whether the checks use the catalog's volume endpoint (then the region matters).
    wants_endpoint = False

    def cache_paths(self) -> List[str]:
        paths = super().cache_paths()
        if self.params.text("os_cloud"):
            paths += auth.clouds_yaml_paths()
        return paths

    def credentials(self) -> auth.Credentials:
        p = self.params
        region = p.text("os_region_name") if self.declares("os_region_name") else ""
        if p.text("os_cloud"):
            try:
                creds = auth.credentials_from_clouds_yaml(p.text("os_cloud"))
            except auth.KeystoneError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, err.message) from None
            if p.text("ca_file") or p.flag("insecure"):
                creds.ca_file, creds.insecure = p.text("ca_file"), p.flag("insecure")
            creds.region_name = region or creds.region_name
        elif any(p.text(name) for name in _CREDENTIAL_NAMES):
            auth_url = p.text("os_auth_url")
            section = None
            if not auth_url.strip() or (not region and self.wants_endpoint):
                section = self.load_config().keystone_authtoken
            if not auth_url.strip():
                assert section is not None
                auth_url = section.auth_url or section.www_authenticate_uri
            creds = auth.Credentials(
                "resource parameters",
                auth_url,
                username=p.text("os_username"),
                password=p.text("os_password"),
                project_name=p.text("os_project_name"),
                user_domain_name=p.text("os_user_domain_name"),
                project_domain_name=p.text("os_project_domain_name"),
                application_credential_id=p.text("os_application_credential_id"),
                application_credential_secret=p.text("os_application_credential_secret"),
                ca_file=p.text("ca_file"),
                insecure=p.flag("insecure"),
                region_name=region or (section.region_name if section is not None else ""),
            )
        else:
            s = self.load_config().keystone_authtoken
            creds = auth.Credentials(
                f"{self.config_path} [keystone_authtoken]",
                s.auth_url or s.www_authenticate_uri,
                username=s.username,
                password=s.password,
                project_name=s.project_name,
                user_domain_name=s.user_domain_name,
                user_domain_id=s.user_domain_id,
                project_domain_name=s.project_domain_name,
                project_domain_id=s.project_domain_id,
                application_credential_id=s.application_credential_id,
                application_credential_secret=s.application_credential_secret,
                ca_file=p.text("ca_file") or s.cafile,
                insecure=p.flag("insecure") or s.insecure,
                region_name=region or s.region_name,
            )
        for secret in creds.secrets:
            self.log.add_secret(secret)
        return creds

    def declares(self, name: str) -> bool:
        return any(param.name == name for param in self.spec.parameters)

    def http_get(self, url: str, token: str = "") -> httpclient.Response:
        return httpclient.get(
            url,
            self.check_timeout(),
            headers={"X-Auth-Token": token} if token else None,
            ca_file=self.params.text("ca_file"),
            insecure=self.params.flag("insecure"),
        )

    def token(self, skip_note: str, outage_note: str) -> Tuple[Optional[auth.Token], bool, Tuple[str, str]]:
        """(token, fresh, problem): the cached token, else a new one.  Without a token, problem
        says why: SKIPPED (no usable credentials; skip_note says what is checked then) or
        DEGRADED (Keystone failed; outage_note says what the check concludes anyway)."""
        cached = auth.read_cached_token(self.state_path("token"), self.inputs())
        if cached is not None:
            self.log.add_secret(cached.value)
            return cached, False, (OK, "")
        token, problem = self._new_token(skip_note, outage_note)
        return token, True, problem

    def while_starting(self) -> None:
        # Keystone answers while the service boots: the first check then finds a cached token
        # instead of fetching one (keystoneauth1's import and a token request, ~0.3 s) after
        # the service is up.  Failures are the first check's to report.
        try:
            self.token("", "")
        except OcfError:
            pass

    def renew_token(self, skip_note: str, outage_note: str) -> Tuple[Optional[auth.Token], Tuple[str, str]]:
        """A new token in place of a cached one the API rejected (revoked, Keystone's keys
        rotated): asked once, never in a loop."""
        auth.forget_token(self.state_path("token"))
        return self._new_token(skip_note, outage_note)

    def _new_token(self, skip_note: str, outage_note: str) -> Tuple[Optional[auth.Token], Tuple[str, str]]:
        # Without credentials, what is missing is remembered until a parameter or a watched
        # file changes: finding it out again reads cinder.conf through oslo.config, ~80 ms of
        # every monitor of a resource that has none.
        missing = self.state_path("nocreds")
        try:
            known = read_state(missing)
        except StateFileError:
            known = {}
        if known.get("problem") and known.get("inputs") == self.inputs():
            return None, (SKIPPED, f"no usable Keystone credentials: {known['problem']}; {skip_note}")
        creds = self.credentials()
        problem = creds.problem()
        if problem:
            try:
                write_state(missing, {"inputs": self.inputs(), "problem": problem})
            except (OSError, ValueError) as err:
                self.log.debug(f"cannot cache the lack of credentials in {missing}: {err}")
            return None, (SKIPPED, f"no usable Keystone credentials: {problem}; {skip_note}")
        try:
            token = auth.fetch_token(creds, self.check_timeout())
        except auth.KeystoneError as err:
            return None, (DEGRADED, f"{err.message}; {outage_note}")
        self.log.add_secret(token.value)
        path = self.state_path("token")
        try:
            auth.store_token(path, self.inputs(), token)
        except OSError as err:
            self.log.warning(f"cannot cache the token in {path}: {err}")
        return token, (OK, "")

    def keystone_answers(self) -> bool:
        try:
            creds = self.credentials()
            return self.http_get(creds.auth_url).status < 500
        except (httpclient.HttpError, OcfError, ValueError):
            return False

    def validate_credentials(self, without: str) -> None:
        """Incomplete credentials given as parameters are a configuration error; incomplete
        ones from cinder.conf only a warning (without: what the monitor checks then)."""
        ca_file = self.params.text("ca_file")
        if ca_file and not os.path.isfile(ca_file):
            raise OcfError(OcfExit.ERR_CONFIGURED, f"ca_file {ca_file} does not exist or is not a file")
        creds = self.credentials()
        problem = creds.problem()
        if problem and creds.source == "resource parameters":
            raise OcfError(OcfExit.ERR_CONFIGURED, f"incomplete monitoring credentials: {problem}")
        if not problem and creds.auth_url:
            # Else every monitor would report a Keystone "outage" that is a typo.
            try:
                httpclient.split_url(creds.auth_url)
            except ValueError as err:
                if creds.source == "resource parameters":
                    raise OcfError(OcfExit.ERR_CONFIGURED, f"os_auth_url: {err}") from None
                problem = f"bad Keystone URL ({err})"
        if problem:
            self.log.warning(f"no usable Keystone credentials ({problem}): {without}")
        if creds.insecure:
            self.log.warning("TLS certificates are not verified (insecure)")
