"""ocf:openstack:cinder-api: the Block Storage API, judged by its answers, not by its pid.

Exports: ApiAgent, SPEC.

Health, cheapest first: the process is ours; GET / answers (300, the version list, needs no
token); an authenticated GET /v3/{project}/types is answered 200 with a Keystone token cached
per resource.  Keystone's trouble is never cinder-api's: with Keystone down the monitor
answers 0 and warns.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cinder_ocf import auth, httpclient
from cinder_ocf.checks import DEGRADED, FAILED, OK, SKIPPED, CheckResult, timed
from cinder_ocf.daemon import STANDARD_ACTIONS, DaemonAgent, daemon_parameters
from cinder_ocf.metadata import AgentSpec, Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.statefile import StateFileError, fingerprint, read_state, write_state

if TYPE_CHECKING:
    from typing import List, Optional, Tuple

    from cinder_ocf.checks import Deadline

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
    Parameter("os_project_name", "Monitoring project", "Project the token is scoped to."),
    Parameter(
        "os_user_domain_name", "Domain of os_username", "Keystone domain of the user.",
        default="Default",
    ),
    Parameter(
        "os_project_domain_name", "Domain of os_project_name", "Keystone domain of the project.",
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
    parameters=[
        *daemon_parameters("cinder-api"),
        Parameter(
            "url",
            "API URL to check",
            "Base URL of this node's cinder-api (scheme, host, port). Empty: built from "
            "osapi_volume_listen and osapi_volume_listen_port of cinder.conf, a wildcard "
            "address meaning loopback. A path such as the 2013 agent's /v1/ is ignored: the "
            "root and /v3 are checked.",
        ),
        *CREDENTIAL_PARAMETERS,
    ],
    actions=STANDARD_ACTIONS,
)

_CREDENTIAL_NAMES = ("os_username", "os_password", "os_project_name", "os_application_credential_id",
                     "os_application_credential_secret")  # fmt: skip


class ApiAgent(DaemonAgent):
    spec = SPEC

    # ---------------------------------------------------------------- what to check
    def inputs(self) -> str:
        """Fingerprint of everything the caches below derive from."""
        from cinder_ocf.config import watched_paths  # noqa: PLC0415

        paths = watched_paths(*self.config_sources())
        if self.params.text("os_cloud"):
            paths += auth.clouds_yaml_paths()
        return fingerprint(self.env.params, paths)

    def api_base(self) -> str:
        """scheme://host:port of the API; from url, or from cinder.conf through a cache."""
        url = self.params.text("url").strip()
        if url:
            scheme, host, port, path = httpclient.split_url(url)
            if path.strip("/"):
                self.log.notice_once("url-path", f"url path {path} is ignored: / and /v3 are checked")
            host = f"[{host}]" if ":" in host else host
            return f"{scheme}://{host}:{port}"
        cache = self.state_path("conf")
        inputs = self.inputs()
        try:
            cached = read_state(cache)
        except StateFileError:
            cached = {}
        if cached.get("inputs") == inputs and cached.get("api_url"):
            return cached["api_url"]
        base = self.load_config().api_url
        try:
            write_state(cache, {"inputs": inputs, "api_url": base})
        except OSError as err:
            self.log.warning(f"cannot cache cinder.conf facts in {cache}: {err}")
        return base

    def credentials(self) -> auth.Credentials:
        p = self.params
        if p.text("os_cloud"):
            try:
                creds = auth.credentials_from_clouds_yaml(p.text("os_cloud"))
            except auth.KeystoneError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, err.message) from None
            if p.text("ca_file") or p.flag("insecure"):
                creds.ca_file, creds.insecure = p.text("ca_file"), p.flag("insecure")
        elif any(p.text(name) for name in _CREDENTIAL_NAMES):
            auth_url = p.text("os_auth_url")
            if not auth_url.strip():
                section = self.load_config().keystone_authtoken
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
            )
        for secret in creds.secrets:
            self.log.add_secret(secret)
        return creds

    def _get(self, url: str, token: str = "") -> httpclient.Response:
        return httpclient.get(
            url,
            self.check_timeout(),
            headers={"X-Auth-Token": token} if token else None,
            ca_file=self.params.text("ca_file"),
            insecure=self.params.flag("insecure"),
        )

    # ---------------------------------------------------------------- checks
    def health(self, deadline: Deadline) -> List[CheckResult]:
        base = self.api_base()
        root = timed("api-root", lambda: self._check_root(base))
        if root.status == FAILED:
            return [root]
        return [root, timed("api-token", lambda: self._check_authenticated(base))]

    def _check_root(self, base: str) -> Tuple[str, str]:
        try:
            answer = self._get(base + "/")
        except httpclient.HttpError as err:
            if err.kind == "timeout":
                return (
                    FAILED,
                    f"cinder-api does not answer GET {base}/ within {self.check_timeout():g} s (hung?)",
                )
            return FAILED, f"cinder-api GET {base}/: {err.message}"
        if answer.status in (200, 300):
            return OK, f"GET {base}/ answered {answer.status}"
        return FAILED, f"cinder-api GET {base}/ answered HTTP {answer.status}"

    def _check_authenticated(self, base: str) -> Tuple[str, str]:
        path = self.state_path("token")
        inputs = self.inputs()
        token = auth.read_cached_token(path, inputs)
        fresh = False
        if token is None:
            token, problem = self._new_token(path, inputs)
            if token is None:
                return problem
            fresh = True
        self.log.add_secret(token.value)
        while True:
            url = f"{base}/v3/{token.project_id}/types"
            try:
                answer = self._get(url, token.value)
            except httpclient.HttpError as err:
                if err.kind == "timeout":
                    waited = self.check_timeout()
                    return FAILED, f"cinder-api does not answer an authenticated GET within {waited:g} s"
                return FAILED, f"cinder-api authenticated GET {url}: {err.message}"
            if answer.status == 200:
                return (
                    OK,
                    f"authenticated GET /v3/<project>/types answered 200{'' if fresh else ' (cached token)'}",
                )
            if answer.status == 401 and not fresh:
                # Revoked or expired early (Keystone restarted with new keys): one new token.
                auth.forget_token(path)
                token, problem = self._new_token(path, inputs)
                if token is None:
                    return problem
                fresh = True
                self.log.add_secret(token.value)
                continue
            if answer.status in (401, 403):
                return (
                    FAILED,
                    f"cinder-api rejects a valid Keystone token: HTTP {answer.status} for GET {url}",
                )
            if answer.status >= 500 and not self._keystone_answers():
                return DEGRADED, (
                    f"cinder-api answered HTTP {answer.status} and Keystone does not answer either: "
                    f"a Keystone outage, not cinder-api's failure"
                )
            return FAILED, f"cinder-api answered HTTP {answer.status} for an authenticated GET {url}"

    def _new_token(self, path: str, inputs: str) -> Tuple[Optional[auth.Token], Tuple[str, str]]:
        creds = self.credentials()
        problem = creds.problem()
        if problem:
            return None, (SKIPPED, f"no usable Keystone credentials: {problem}; only GET / was checked")
        try:
            token = auth.fetch_token(creds, self.check_timeout())
        except auth.KeystoneError as err:
            return None, (DEGRADED, f"{err.message}; cinder-api answers GET /, so it is considered healthy")
        self.log.add_secret(token.value)
        try:
            auth.store_token(path, inputs, token)
        except OSError as err:
            self.log.warning(f"cannot cache the token in {path}: {err}")
        return token, (OK, "")

    def _keystone_answers(self) -> bool:
        try:
            creds = self.credentials()
            return self._get(creds.auth_url).status < 500
        except (httpclient.HttpError, OcfError, ValueError):
            return False

    # ---------------------------------------------------------------- validation and start
    def validate_service(self) -> None:
        url = self.params.text("url")
        if url.strip():
            try:
                httpclient.split_url(url.strip())
            except ValueError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"url: {err}") from None
        ca_file = self.params.text("ca_file")
        if ca_file and not os.path.isfile(ca_file):
            raise OcfError(OcfExit.ERR_CONFIGURED, f"ca_file {ca_file} does not exist")
        creds = self.credentials()
        problem = creds.problem()
        if problem and creds.source == "resource parameters":
            raise OcfError(OcfExit.ERR_CONFIGURED, f"incomplete monitoring credentials: {problem}")
        if problem:
            self.log.warning(f"no usable Keystone credentials ({problem}): the monitor checks GET / only")
        if creds.insecure:
            self.log.warning("TLS certificates are not verified (insecure)")

    def before_spawn(self) -> None:
        base = self.api_base()
        try:
            answer = self._get(base + "/")
        except httpclient.HttpError:
            return
        raise OcfError(
            OcfExit.ERR_GENERIC,
            f"something not started by this resource already answers at {base} (HTTP "
            f"{answer.status}); refusing to start a second cinder-api on the same port",
        )
