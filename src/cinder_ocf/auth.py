"""Keystone v3 tokens for the authenticated checks: credentials, a per-resource cache, fetching.

Exports: Credentials, Token, KeystoneError, read_cached_token, store_token, fetch_token,
credentials_from_clouds_yaml, keystone_v3_url.

keystoneauth1 gets the token (a session says how to send, an auth plugin how to get a
token); it is imported only when a token must be fetched.  The token is cached 0600 in
HA_RSCTMP and reused until shortly before it expires, so Keystone sees one request per token
lifetime per resource, not one per monitor (a production Keystone hashes passwords slowly,
on purpose).
"""

from __future__ import annotations

import os
import time

from cinder_ocf.statefile import StateFileError, read_state, write_state

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

# Renew when less than this is left: a token must outlive the monitor that uses it.
RENEW_MARGIN_S = 300.0
CLOUDS_YAML_PATHS = ("/etc/openstack/clouds.yaml", "/root/.config/openstack/clouds.yaml")


class KeystoneError(Exception):
    """No token.  kind: unreachable (network, timeout, 5xx) or rejected (401/403 and the like)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Credentials:
    """Who the monitor is in Keystone, and where Keystone is."""

    __slots__ = (
        "application_credential_id", "application_credential_secret", "auth_url", "ca_file",
        "insecure", "password", "project_domain_id", "project_domain_name", "project_id",
        "project_name", "region_name", "source", "user_domain_id", "user_domain_name", "username",
    )  # fmt: skip

    def __init__(
        self,
        source: str,
        auth_url: str,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        project_name: Optional[str] = None,
        project_id: Optional[str] = None,
        user_domain_name: Optional[str] = None,
        user_domain_id: Optional[str] = None,
        project_domain_name: Optional[str] = None,
        project_domain_id: Optional[str] = None,
        application_credential_id: Optional[str] = None,
        application_credential_secret: Optional[str] = None,
        ca_file: Optional[str] = None,
        insecure: bool = False,
        region_name: Optional[str] = None,
    ) -> None:
        self.source = source  # shown to operators: where these credentials came from
        self.auth_url = keystone_v3_url(auth_url) if auth_url.strip() else ""
        self.username = username or ""
        self.password = password or ""
        self.project_name = project_name or ""
        self.project_id = project_id or ""
        self.user_domain_id = user_domain_id or ""
        self.project_domain_id = project_domain_id or ""
        # Keystone needs a domain for names; "Default" is what every installer creates.
        self.user_domain_name = user_domain_name or ("" if self.user_domain_id else "Default")
        self.project_domain_name = project_domain_name or ("" if self.project_domain_id else "Default")
        self.application_credential_id = application_credential_id or ""
        self.application_credential_secret = application_credential_secret or ""
        self.ca_file = ca_file or ""
        self.insecure = bool(insecure)
        self.region_name = region_name or ""  # picks the catalog's endpoints when set

    @property
    def secrets(self) -> List[str]:
        return [s for s in (self.password, self.application_credential_secret) if s]

    def problem(self) -> Optional[str]:
        """What is missing for a token request, or None."""
        if not self.auth_url:
            return f"no Keystone URL ({self.source})"
        if self.application_credential_id or self.application_credential_secret:
            if not (self.application_credential_id and self.application_credential_secret):
                return f"application credential needs an id and a secret ({self.source})"
            return None
        if not self.username or not self.password:
            return f"no username or password ({self.source})"
        if not (self.project_name or self.project_id):
            return f"no project ({self.source})"
        return None


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


class Token:
    __slots__ = ("endpoint", "expires_at", "project_id", "value")

    def __init__(self, value: str, project_id: str, expires_at: float, endpoint: str = "") -> None:
        self.value = value
        self.project_id = project_id
        self.expires_at = expires_at
        self.endpoint = endpoint  # the catalog's block-storage URL, "" when it has none

    def usable(self, now: Optional[float] = None) -> bool:
        return self.expires_at - (now if now is not None else time.time()) > RENEW_MARGIN_S


def read_cached_token(path: str, inputs: str) -> Optional[Token]:
    """The cached token if it was got from the same inputs and is not about to expire.

    A cache file that is corrupt or unsafe (a symlink, another owner, readable by others) is
    ignored: the next token fetched replaces it.
    """
    try:
        state = read_state(path)
    except StateFileError:
        return None
    try:
        token = Token(
            state["token"], state["project_id"], float(state["expires_at"]), state.get("endpoint", "")
        )
    except (KeyError, ValueError):
        return None
    if state.get("inputs") != inputs or not token.value or not token.usable():
        return None
    return token


def store_token(path: str, inputs: str, token: Token) -> None:
    write_state(
        path,
        {"inputs": inputs, "project_id": token.project_id, "expires_at": f"{token.expires_at:.0f}",
         "endpoint": token.endpoint, "token": token.value},
    )  # fmt: skip


def forget_token(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fetch_token(creds: Credentials, timeout: float) -> Token:
    """A new project-scoped token from Keystone v3, with the catalog's block-storage endpoint."""
    from keystoneauth1 import exceptions, session  # noqa: PLC0415 - ~130 ms of imports
    from keystoneauth1.identity import v3  # noqa: PLC0415

    plugin: Any
    if creds.application_credential_id:
        plugin = v3.ApplicationCredential(
            auth_url=creds.auth_url,
            application_credential_id=creds.application_credential_id,
            application_credential_secret=creds.application_credential_secret,
        )
    else:
        plugin = v3.Password(
            auth_url=creds.auth_url,
            username=creds.username,
            password=creds.password,
            user_domain_name=creds.user_domain_name or None,
            user_domain_id=creds.user_domain_id or None,
            project_name=creds.project_name or None,
            project_id=creds.project_id or None,
            project_domain_name=creds.project_domain_name or None,
            project_domain_id=creds.project_domain_id or None,
        )
    verify: Any = False if creds.insecure else (creds.ca_file or True)
    sess = session.Session(auth=plugin, verify=verify, timeout=max(timeout, 0.1))
    try:
        access = plugin.get_access(sess)
    except exceptions.Unauthorized:
        raise KeystoneError("rejected", f"Keystone rejected the credentials ({creds.source})") from None
    except exceptions.SSLError as err:
        raise KeystoneError("unreachable", f"TLS to Keystone failed: {_short(err)}") from None
    except (exceptions.ConnectFailure, exceptions.ConnectTimeout, exceptions.RequestTimeout,
            exceptions.DiscoveryFailure) as err:  # fmt: skip
        raise KeystoneError(
            "unreachable", f"Keystone at {creds.auth_url} unreachable: {_short(err)}"
        ) from None
    except exceptions.HttpError as err:
        kind = "unreachable" if (err.http_status or 500) >= 500 else "rejected"
        raise KeystoneError(kind, f"Keystone answered {err.http_status}: {_short(err)}") from None
    except exceptions.ClientException as err:
        raise KeystoneError("unreachable", f"Keystone request failed: {_short(err)}") from None
    if not access.project_id:
        raise KeystoneError("rejected", "Keystone gave a token without a project scope")
    expires = access.expires.timestamp() if access.expires else time.time() + 3600
    return Token(access.auth_token, access.project_id, expires, _volume_endpoint(access, creds, exceptions))


def _volume_endpoint(access: Any, creds: Credentials, exceptions: Any) -> str:
    """The block-storage v3 endpoint of the token's catalog: internal, else public."""
    for service_type in ("volumev3", "block-storage"):
        try:
            url = access.service_catalog.url_for(
                service_type=service_type,
                interface=["internal", "public"],
                region_name=creds.region_name or None,
            )
        except exceptions.CatalogException:
            continue
        if url:
            return str(url).rstrip("/")
    return ""


def _short(err: BaseException) -> str:
    from cinder_ocf.httpclient import root_cause  # noqa: PLC0415

    return " ".join(root_cause(err).split()) or type(err).__name__


def credentials_from_clouds_yaml(cloud: str, paths: Optional[List[str]] = None) -> Credentials:
    """The entry of clouds.yaml named cloud (the first file that has it), as Credentials."""
    import yaml  # noqa: PLC0415 - PyYAML comes with oslo.config

    for path in paths or clouds_yaml_paths():
        try:
            with open(path, encoding="utf-8") as src:
                document = yaml.safe_load(src) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as err:
            raise KeystoneError("rejected", f"cannot read {path}: {_short(err)}") from None
        entry = (document.get("clouds") or {}).get(cloud) if isinstance(document, dict) else None
        if not isinstance(entry, dict):
            continue
        auth: Dict[str, Any] = entry.get("auth") or {}
        verify = entry.get("verify", True)
        return Credentials(
            f"clouds.yaml {path}, cloud {cloud}",
            str(auth.get("auth_url", "")),
            username=auth.get("username"),
            password=auth.get("password"),
            project_name=auth.get("project_name") or auth.get("tenant_name"),
            project_id=auth.get("project_id") or auth.get("tenant_id"),
            user_domain_name=auth.get("user_domain_name"),
            user_domain_id=auth.get("user_domain_id"),
            project_domain_name=auth.get("project_domain_name"),
            project_domain_id=auth.get("project_domain_id"),
            application_credential_id=auth.get("application_credential_id"),
            application_credential_secret=auth.get("application_credential_secret"),
            ca_file=entry.get("cacert"),
            insecure=verify is False,
            region_name=entry.get("region_name"),
        )
    raise KeystoneError("rejected", f"no cloud named {cloud!r} in clouds.yaml")


def clouds_yaml_paths() -> List[str]:
    explicit = os.environ.get("OS_CLIENT_CONFIG_FILE")
    return ([explicit] if explicit else []) + list(CLOUDS_YAML_PATHS)
