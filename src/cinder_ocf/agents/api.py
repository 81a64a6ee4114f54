"""ocf:openstack:cinder-api: the Block Storage API, judged by its answers, not by its pid.

Exports: ApiAgent, SPEC.

Health, cheapest first: the process is ours; GET / answers (300, the version list, needs no
token); an authenticated GET /v3/{project}/types is answered 200 with a Keystone token cached
per resource.  Keystone's trouble is never cinder-api's: with Keystone down the monitor
answers 0 and warns.
"""

from __future__ import annotations

from cinder_ocf import httpclient
from cinder_ocf.agents.keystone import CREDENTIAL_PARAMETERS, TokenAgent
from cinder_ocf.checks import DEGRADED, FAILED, OK, CheckResult, timed
from cinder_ocf.daemon import STANDARD_ACTIONS, daemon_parameters
from cinder_ocf.metadata import AgentSpec, Parameter
from cinder_ocf.ocf import OcfError, OcfExit

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Dict, List, Tuple

    from cinder_ocf.checks import Deadline
    from cinder_ocf.config import CinderConfig

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

_SKIP_NOTE = "only GET / was checked"
_OUTAGE_NOTE = "cinder-api answers GET /, so it is considered healthy"


class ApiAgent(TokenAgent):
    spec = SPEC

    # ---------------------------------------------------------------- what to check
    def derive_facts(self, config: CinderConfig) -> Dict[str, str]:
        return {"api_url": config.api_url}

    def api_base(self) -> str:
        """scheme://host:port of the API; from url, or from cinder.conf through a cache."""
        url = self.params.text("url").strip()
        if url:
            scheme, host, port, path = httpclient.split_url(url)
            if path.strip("/"):
                self.log.notice_once("url-path", f"url path {path} is ignored: / and /v3 are checked")
            host = f"[{host}]" if ":" in host else host
            return f"{scheme}://{host}:{port}"
        return self.config_facts()["api_url"]

    # ---------------------------------------------------------------- checks
    def health(self, deadline: Deadline) -> List[CheckResult]:
        base = self.api_base()
        root = timed("api-root", lambda: self._check_root(base))
        if root.status == FAILED:
            return [root]
        return [root, timed("api-token", lambda: self._check_authenticated(base))]

    def _check_root(self, base: str) -> Tuple[str, str]:
        try:
            answer = self.http_get(base + "/")
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
        token, fresh, problem = self.token(_SKIP_NOTE, _OUTAGE_NOTE)
        while True:
            if token is None:
                return problem
            url = f"{base}/v3/{token.project_id}/types"
            try:
                answer = self.http_get(url, token.value)
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
                token, problem = self.renew_token(_SKIP_NOTE, _OUTAGE_NOTE)
                fresh = True
                continue
            if answer.status in (401, 403):
                return (
                    FAILED,
                    f"cinder-api rejects a valid Keystone token: HTTP {answer.status} for GET {url}",
                )
            if answer.status >= 500 and not self.keystone_answers():
                return DEGRADED, (
                    f"cinder-api answered HTTP {answer.status} and Keystone does not answer either: "
                    f"a Keystone outage, not cinder-api's failure"
                )
            return FAILED, f"cinder-api answered HTTP {answer.status} for an authenticated GET {url}"

    # ---------------------------------------------------------------- validation and start
    def validate_service(self) -> None:
        url = self.params.text("url")
        if url.strip():
            try:
                httpclient.split_url(url.strip())
            except ValueError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"url: {err}") from None
        self.validate_credentials("the monitor checks GET / only")

    def before_spawn(self) -> None:
        base = self.api_base()
        try:
            answer = self.http_get(base + "/")
        except httpclient.HttpError:
            return
        raise OcfError(
            OcfExit.ERR_GENERIC,
            f"something not started by this resource already answers at {base} (HTTP "
            f"{answer.status}); refusing to start a second cinder-api on the same port",
        )
