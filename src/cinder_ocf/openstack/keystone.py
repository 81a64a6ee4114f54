"""Keystone v3 tokens for the authenticated checks, through keystoneauth1.

Exports: Credentials, Token, TokenCache, KeystoneError, NoCredentials, fetch_token,
credentials_from_clouds_yaml, clouds_yaml_paths, keystone_v3_url.

Credentials come from one of three places (the resource's os_* parameters, a clouds.yaml
entry, cinder.conf's [keystone_authtoken]) and are mapped once, to keystoneauth1's own option
names; keystoneauth1.loading builds the plugin (v3password or v3applicationcredential).

The token is cached per resource as keystoneauth1's auth state (``get_auth_state``, with the
plugin's ``get_cache_id`` beside it), 0600 in HA_RSCTMP, and reused until shortly before it
expires: Keystone sees one request per token lifetime per resource, not one per monitor (a
production Keystone hashes passwords slowly, on purpose).  Reading the cache is JSON only:
keystoneauth1 (~130 ms of imports) is loaded when a token must be fetched.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from cinder_ocf import trusted
from cinder_ocf.log import redacted_repr
from cinder_ocf.openstack.http import root_cause

# Renew when less than this is left: a token must outlive the monitor that uses it.
RENEW_MARGIN_S = 300.0
CLOUDS_YAML_PATHS = ("/etc/openstack/clouds.yaml", "/root/.config/openstack/clouds.yaml")
# keystoneauth1's option names, as the three sources of credentials spell them too.
OPTION_NAMES = (
    "username", "password", "project_name", "project_id", "user_domain_name", "user_domain_id",
    "project_domain_name", "project_domain_id", "application_credential_id",
    "application_credential_secret",
)  # fmt: skip
SECRET_OPTIONS = ("password", "application_credential_secret")


class KeystoneError(Exception):
    """No token.  kind: unreachable (network, timeout, 5xx, an unusable answer) or rejected
    (401/403 and the like)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class NoCredentials(Exception):
    """No usable credentials: what is missing."""


def keystone_v3_url(url: str) -> str:
    """The v3 endpoint for any Keystone URL operators have: .../v2.0/tokens (the 2013 agents'
    keystone_get_token_url), .../v2.0, .../v3, or the unversioned root."""
    base = url.strip().rstrip("/")
    for marker in ("/v2.0", "/v3"):
        cut = base.find(marker)
        if cut >= 0 and (len(base) == cut + len(marker) or base[cut + len(marker)] == "/"):
            base = base[:cut]
            break
    return base + "/v3"


class Credentials(NamedTuple):
    """Who the monitor is in Keystone, and where Keystone is."""

    source: str  # shown to operators: where these credentials came from
    auth_url: str
    options: Mapping[str, str] = MappingProxyType({})  # keystoneauth1's names
    ca_file: str = ""
    insecure: bool = False
    region_name: str = ""  # picks the catalog's endpoints when set

    def __repr__(self) -> str:
        return redacted_repr(self, ("options",))  # a password or an application credential's secret

    @classmethod
    def build(
        cls,
        source: str,
        auth_url: str,
        values: Mapping[str, Any],
        ca_file: str = "",
        insecure: bool = False,
        region_name: str = "",
    ) -> Credentials:
        options = {name: str(values[name]) for name in OPTION_NAMES if values.get(name)}
        # Keystone needs a domain for names; "Default" is what every installer creates.
        for kind in ("user", "project"):
            if f"{kind}_domain_id" not in options:
                options.setdefault(f"{kind}_domain_name", "Default")
        return cls(
            source,
            keystone_v3_url(auth_url) if auth_url.strip() else "",
            options,
            ca_file or "",
            bool(insecure),
            region_name or "",
        )

    @property
    def secrets(self) -> list[str]:
        return [self.options[name] for name in SECRET_OPTIONS if name in self.options]

    @property
    def uses_application_credential(self) -> bool:
        return any(name.startswith("application_credential") for name in self.options)

    def problem(self) -> str | None:
        """What is missing for a token request, or None."""
        has = self.options.get
        if not self.auth_url:
            return f"no Keystone URL ({self.source})"
        if self.uses_application_credential:
            if not (has("application_credential_id") and has("application_credential_secret")):
                return f"application credential needs an id and a secret ({self.source})"
            return None
        if not has("username") or not has("password"):
            return f"no username or password ({self.source})"
        if not (has("project_name") or has("project_id")):
            return f"no project ({self.source})"
        return None


class Token(NamedTuple):
    value: str
    project_id: str
    expires_at: float
    endpoint: str = ""  # the catalog's block-storage URL, "" when it has none

    def usable(self, now: float | None = None) -> bool:
        return self.expires_at - (now if now is not None else time.time()) > RENEW_MARGIN_S

    def __repr__(self) -> str:
        return redacted_repr(self, ("value",))


def _epoch(stamp: str) -> float:
    """Keystone's expires_at ('2026-12-01T22:37:00.000000Z') as epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def token_of(auth_state: str, endpoint: str) -> Token:
    """The token keystoneauth1's auth state holds.  ValueError when it holds none."""
    try:
        state = json.loads(auth_state)
        body = state["body"]["token"]
        return Token(
            str(state["auth_token"]), str(body["project"]["id"]), _epoch(body["expires_at"]), endpoint
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"no token in the auth state ({type(err).__name__})") from None


class TokenCache:
    """The resource's cached token: keystoneauth1's auth state, under the inputs (parameters
    and watched files) it was got with."""

    def __init__(self, path: str, inputs: str) -> None:
        self.path = path
        self.inputs = inputs

    def load(self) -> Token | None:
        """The cached token if it was got from the same inputs and is not about to expire.

        A cache file that is corrupt or unsafe (a symlink, another owner, readable by others)
        is ignored: the next token fetched replaces it.
        """
        record = trusted.read_json(self.path)
        if record is None or record.get("inputs") != self.inputs:
            return None
        try:
            token = token_of(str(record["auth_state"]), str(record.get("endpoint", "")))
        except (KeyError, ValueError):
            return None
        return token if token.value and token.usable() else None

    def store(self, fetched: Fetched) -> None:
        trusted.write_json(
            self.path,
            {"inputs": self.inputs, "cache_id": fetched.cache_id, "auth_state": fetched.auth_state,
             "endpoint": fetched.token.endpoint},
        )  # fmt: skip

    def forget(self) -> None:
        trusted.remove(self.path)


class Fetched(NamedTuple):
    token: Token
    auth_state: str
    cache_id: str

    def __repr__(self) -> str:
        return redacted_repr(self, ("auth_state",))


def fetch_token(creds: Credentials, timeout: float) -> Fetched:
    """A new project-scoped token from Keystone v3, with the catalog's block-storage endpoint,
    within timeout seconds in all (keystoneauth1's timeout bounds each read, not the request)."""
    from keystoneauth1 import exceptions, loading, session  # noqa: PLC0415 - ~130 ms, once a token lifetime

    loader: Any = loading.get_plugin_loader(
        "v3applicationcredential" if creds.uses_application_credential else "v3password"
    )
    plugin = loader.load_from_options(auth_url=creds.auth_url, **creds.options)
    verify: bool | str = False if creds.insecure else (creds.ca_file or True)
    sess = session.Session(auth=plugin, verify=verify, timeout=max(timeout, 0.1))
    outcome: dict[str, Any] = {}

    def request() -> None:
        try:
            outcome["access"] = plugin.get_access(sess)
        except Exception as err:
            outcome["error"] = err

    worker = threading.Thread(target=request, name="keystone", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.1))
    if worker.is_alive():
        # The thread dies with the agent's process, which answers now.
        raise KeystoneError(
            "unreachable",
            f"Keystone at {creds.auth_url} unreachable: timed out (no answer within {timeout:g} s)",
        )
    err = outcome.get("error")
    if isinstance(err, exceptions.Unauthorized):
        raise KeystoneError("rejected", f"Keystone rejected the credentials ({creds.source})")
    if isinstance(err, exceptions.SSLError):
        raise KeystoneError("unreachable", f"TLS to Keystone failed: {_short(err)}")
    if isinstance(err, (exceptions.ConnectFailure, exceptions.ConnectTimeout, exceptions.RequestTimeout,
                        exceptions.DiscoveryFailure)):  # fmt: skip
        raise KeystoneError("unreachable", f"Keystone at {creds.auth_url} unreachable: {_short(err)}")
    if isinstance(err, exceptions.HttpError):
        kind = "unreachable" if (err.http_status or 500) >= 500 else "rejected"
        raise KeystoneError(kind, f"Keystone answered {err.http_status}: {_short(err)}")
    if err is not None:
        # Whatever else goes wrong with Keystone's answer (a body keystoneauth1 cannot read)
        # is Keystone's trouble, not the service's.
        raise KeystoneError("unreachable", f"Keystone request failed: {_short(err)}")
    access = outcome["access"]
    try:
        if not access.project_id:
            raise KeystoneError("rejected", "Keystone gave a token without a project scope")
        endpoint = _volume_endpoint(access, creds, exceptions.CatalogException)
        auth_state = plugin.get_auth_state() or ""
        return Fetched(token_of(auth_state, endpoint), auth_state, plugin.get_cache_id() or "")
    except KeystoneError:
        raise
    except Exception as unusable:
        raise KeystoneError(
            "unreachable", f"Keystone answered a token the agent cannot use: {_short(unusable)}"
        ) from None


def _volume_endpoint(access: Any, creds: Credentials, catalog_error: type[Exception]) -> str:
    """The block-storage v3 endpoint of the token's catalog: internal, else public."""
    for service_type in ("volumev3", "block-storage"):
        try:
            url = access.service_catalog.url_for(
                service_type=service_type,
                interface=["internal", "public"],
                region_name=creds.region_name or None,
            )
        except catalog_error:
            continue
        if url:
            return str(url).rstrip("/")
    return ""


def _short(err: BaseException) -> str:
    return " ".join(root_cause(err).split()) or type(err).__name__


def credentials_from_clouds_yaml(
    cloud: str, paths: list[str], ca_file: str = "", insecure: bool = False, region: str = ""
) -> Credentials:
    """The entry of clouds.yaml named cloud (the first file that has it), as Credentials."""
    import yaml  # noqa: PLC0415 - only with os_cloud, and then on a token fetch

    for path in paths:
        try:
            document = yaml.safe_load(_read_regular(path)) or {}
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise KeystoneError("rejected", f"cannot read {path}: {_short(err)}") from None
        entry = (document.get("clouds") or {}).get(cloud) if isinstance(document, dict) else None
        if not isinstance(entry, dict):
            continue
        auth: dict[str, Any] = dict(entry.get("auth") or {})
        auth.setdefault("project_name", auth.get("tenant_name"))
        auth.setdefault("project_id", auth.get("tenant_id"))
        override = bool(ca_file or insecure)
        return Credentials.build(
            f"clouds.yaml {path}, cloud {cloud}",
            str(auth.get("auth_url", "")),
            auth,
            ca_file=ca_file if override else str(entry.get("cacert") or ""),
            insecure=insecure if override else entry.get("verify", True) is False,
            region_name=region or str(entry.get("region_name") or ""),
        )
    raise KeystoneError("rejected", f"no cloud named {cloud!r} in clouds.yaml")


def _read_regular(path: str, limit: int = 1 << 20) -> str:
    """A small text file's content; OSError unless it is a regular file (a FIFO would hang)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.read(fd, limit).decode("utf-8")
    finally:
        os.close(fd)


def clouds_yaml_paths(environ: Mapping[str, str]) -> list[str]:
    explicit = environ.get("OS_CLIENT_CONFIG_FILE")
    return ([explicit] if explicit else []) + list(CLOUDS_YAML_PATHS)
