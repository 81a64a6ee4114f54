"""The resource's Keystone token and the one authenticated GET every agent's checks use.

Exports: Tokens, Authenticated, authenticated_get, resolve_credentials.

Credentials come from ``os_cloud`` (clouds.yaml), the ``os_*`` parameters, or, when none is
set, cinder's own ``[keystone_authtoken]``.  Keystone's trouble is never the service's: a
token that cannot be had ends the check as DEGRADED (Keystone failed) or SKIPPED (no usable
credentials), with a note saying what the check concludes then.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from cinder_ocf import trusted
from cinder_ocf.checks import Finding, Status
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import http, keystone

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Context
    from cinder_ocf.log import Logger
    from cinder_ocf.metadata import AgentSpec, ParamValues
    from cinder_ocf.openstack.conf import CinderConfig

# The os_* parameters, by keystoneauth1's option name.
PARAMETER_OPTIONS = {
    "username": "os_username", "password": "os_password", "project_name": "os_project_name",
    "user_domain_name": "os_user_domain_name", "project_domain_name": "os_project_domain_name",
    "application_credential_id": "os_application_credential_id",
    "application_credential_secret": "os_application_credential_secret",
}  # fmt: skip
_GIVEN_BY_PARAMETERS = ("os_username", "os_password", "os_project_name", "os_application_credential_id",
                        "os_application_credential_secret")  # fmt: skip
PARAMETERS_SOURCE = "resource parameters"


def resolve_credentials(
    spec: AgentSpec,
    params: ParamValues,
    load_config: Callable[[], CinderConfig],
    wants_endpoint: bool,
    environ: Mapping[str, str],
) -> keystone.Credentials:
    """The monitor's credentials, from the first source the resource configures."""
    region = params.text("os_region_name") if spec.declares("os_region_name") else ""
    ca_file, insecure = params.text("ca_file"), params.flag("insecure")
    if params.text("os_cloud"):
        try:
            paths = keystone.clouds_yaml_paths(environ)
            return keystone.credentials_from_clouds_yaml(
                params.text("os_cloud"), paths, ca_file, insecure, region
            )
        except keystone.KeystoneError as err:
            raise OcfError(OcfExit.ERR_CONFIGURED, err.message) from None
    if any(params.text(name) for name in _GIVEN_BY_PARAMETERS):
        auth_url = params.text("os_auth_url")
        section = None
        if not auth_url.strip() or (not region and wants_endpoint):
            section = load_config().keystone_authtoken
        if not auth_url.strip() and section is not None:
            auth_url = section.auth_url or section.www_authenticate_uri
        return keystone.Credentials.build(
            PARAMETERS_SOURCE,
            auth_url,
            {option: params.text(name) for option, name in PARAMETER_OPTIONS.items()},
            ca_file,
            insecure,
            region or (section.region_name if section is not None else ""),
        )
    config = load_config()
    section = config.keystone_authtoken
    return keystone.Credentials.build(
        f"{config.source} [keystone_authtoken]",
        section.auth_url or section.www_authenticate_uri,
        {name: getattr(section, name) for name in keystone.OPTION_NAMES if hasattr(section, name)},
        ca_file or section.cafile,
        insecure or section.insecure,
        region or section.region_name,
    )


class Tokens:
    """The resource's token: the cached one, else a new one from Keystone."""

    def __init__(
        self,
        make_cache: Callable[[], keystone.TokenCache],
        nocreds_path: str,
        credentials: Callable[[], keystone.Credentials],
        timeout: Callable[[], float],
        log: Logger,
    ) -> None:
        self._make_cache = make_cache
        self._cache: keystone.TokenCache | None = None
        self.nocreds_path = nocreds_path
        self.credentials = credentials
        self.timeout = timeout
        self.log = log

    @property
    def cache(self) -> keystone.TokenCache:
        """Made when first needed: its key reads the resource's files and parameters."""
        if self._cache is None:
            self._cache = self._make_cache()
        return self._cache

    def cached(self) -> keystone.Token | None:
        token = self.cache.load()
        if token is not None:
            self.log.add_secret(token.value)
        return token

    def new(self) -> keystone.Token:
        """A new token.  NoCredentials or KeystoneError when there is none."""
        # Without credentials, what is missing is remembered until a parameter or a watched
        # file changes: finding it out again reads cinder.conf through oslo.config, ~80 ms of
        # every monitor of a resource that has none.
        known = trusted.read_json(self.nocreds_path)
        if known is not None and known.get("inputs") == self.cache.inputs and known.get("problem"):
            raise keystone.NoCredentials(str(known["problem"]))
        creds = self.credentials()
        problem = creds.problem()
        if problem:
            try:
                trusted.write_json(self.nocreds_path, {"inputs": self.cache.inputs, "problem": problem})
            except OSError as err:
                self.log.debug(f"cannot cache the lack of credentials in {self.nocreds_path}: {err}")
            raise keystone.NoCredentials(problem)
        fetched = keystone.fetch_token(creds, self.timeout())
        self.log.add_secret(fetched.token.value)
        try:
            self.cache.store(fetched)
        except OSError as err:
            self.log.warning(f"cannot cache the token in {self.cache.path}: {err}")
        return fetched.token

    def renew(self) -> keystone.Token:
        """A new token in place of a cached one the API rejected (revoked, Keystone's keys
        rotated): asked once, never in a loop."""
        self.cache.forget()
        return self.new()

    def prefetch(self) -> None:
        """Get a token while the daemon boots, so that the first check finds one cached instead
        of fetching it after the service is up.  Failures are the first check's to report."""
        if self.cached() is None:
            try:
                self.new()
            except (keystone.NoCredentials, keystone.KeystoneError, OcfError):
                pass


class Authenticated(NamedTuple):
    url: str
    token: keystone.Token
    fresh: bool  # fetched by this check, not from the cache
    answer: http.Response


def _token_or_finding(
    ctx: Context, get: Callable[[], keystone.Token], skip_note: str, outage_note: str
) -> keystone.Token:
    try:
        return get()
    except keystone.NoCredentials as missing:
        raise Finding(Status.SKIPPED, f"no usable Keystone credentials: {missing}; {skip_note}") from None
    except keystone.KeystoneError as err:
        raise Finding(Status.DEGRADED, f"{err.message}; {outage_note}") from None
    except OcfError as err:
        # Credentials that cannot be read here (a clouds.yaml gone bad) are validate-all's 6; a
        # monitor answering 6 would stop the resource on every node for one node's file.
        raise Finding(
            Status.DEGRADED, f"cannot use the monitoring credentials: {err.reason}; {skip_note}"
        ) from None


def authenticated_get(
    ctx: Context, url_of: Callable[[keystone.Token], str], skip_note: str, outage_note: str,
    headers: Mapping[str, str] | None = None,
) -> Authenticated:  # fmt: skip
    """GET url_of(token) with the resource's token; a cached token the API answers 401 is
    renewed once.  Raises Finding when there is no token (SKIPPED or DEGRADED with the notes),
    http.HttpError when the API does not answer."""
    token = ctx.tokens.cached()
    fresh = token is None
    if token is None:
        token = _token_or_finding(ctx, ctx.tokens.new, skip_note, outage_note)
    while True:
        url = url_of(token)
        answer = http.get(
            url,
            ctx.check_timeout(),
            headers={**(headers or {}), "X-Auth-Token": token.value},
            ca_file=ctx.params.text("ca_file"),
            insecure=ctx.params.flag("insecure"),
        )
        if answer.status == 401 and not fresh:
            # Revoked or expired early (Keystone restarted with new keys): one new token.
            token, fresh = _token_or_finding(ctx, ctx.tokens.renew, skip_note, outage_note), True
            continue
        return Authenticated(url, token, fresh, answer)


def plain_get(ctx: Context, url: str) -> http.Response:
    """An unauthenticated GET with the resource's TLS settings and the check's timeout."""
    return http.get(
        url, ctx.check_timeout(), ca_file=ctx.params.text("ca_file"), insecure=ctx.params.flag("insecure")
    )


def validate_credentials(ctx: Context, without: str) -> None:
    """Incomplete credentials given as parameters are a configuration error; incomplete ones
    from cinder.conf only a warning (without: what the monitor checks then)."""
    ca_file = ctx.params.text("ca_file")
    if ca_file and not os.path.isfile(ca_file):
        raise OcfError(OcfExit.ERR_CONFIGURED, f"ca_file {ca_file} does not exist or is not a file")
    creds = ctx.tokens.credentials()
    problem = creds.problem()
    if problem and creds.source == PARAMETERS_SOURCE:
        raise OcfError(OcfExit.ERR_CONFIGURED, f"incomplete monitoring credentials: {problem}")
    if not problem and creds.auth_url:
        # Else every monitor would report a Keystone "outage" that is a typo.
        try:
            http.split_url(creds.auth_url)
        except ValueError as err:
            if creds.source == PARAMETERS_SOURCE:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"os_auth_url: {err}") from None
            problem = f"bad Keystone URL ({err})"
    if problem:
        ctx.log.warning(f"no usable Keystone credentials ({problem}): {without}")
    if creds.insecure:
        ctx.log.warning("TLS certificates are not verified (insecure)")


def validate_url(ctx: Context, name: str = "url") -> None:
    url = ctx.params.text(name).strip()
    if url:
        try:
            http.split_url(url)
        except ValueError as err:
            raise OcfError(OcfExit.ERR_CONFIGURED, f"{name}: {err}") from None
