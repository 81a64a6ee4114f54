"""cinder-api's checks: the API answers GET /, and an authenticated GET with a Keystone token.

Exports: api_root, api_authenticated, api_base.
"""

from __future__ import annotations

from cinder_ocf.checks import Finding, Status, check
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.tokens import authenticated_get, plain_get
from cinder_ocf.ocf import OcfError
from cinder_ocf.openstack import http

_SKIP_NOTE = "only GET / was checked"
_OUTAGE_NOTE = "cinder-api answers GET /, so it is considered healthy"
# What keystonemiddleware answers when Keystone fails to validate a token for it (a
# ServiceError: Keystone down, or refusing the service user, as it did once just after a restart).
_MIDDLEWARE_BLAMES_KEYSTONE = b"The Keystone service is temporarily unavailable"


def api_base(ctx: Context) -> str:
    """scheme://host:port of the API: from url, or from cinder.conf's listen address."""
    url = ctx.params.text("url").strip()
    if not url:
        return ctx.facts.api_url
    scheme, host, port, path = http.split_url(url)
    if path.strip("/"):
        ctx.log.notice_once("url-path", f"url path {path} is ignored: / and /v3 are checked")
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def _root(ctx: Context) -> tuple[Status, str]:
    base = api_base(ctx)
    try:
        answer = plain_get(ctx, base + "/")
    except http.HttpError as err:
        if err.kind == "timeout":
            return (
                Status.FAILED,
                f"cinder-api does not answer GET {base}/ within {ctx.check_timeout():g} s (hung?)",
            )
        return Status.FAILED, f"cinder-api GET {base}/: {err.message}"
    if answer.status in (200, 300):
        return Status.OK, f"GET {base}/ answered {answer.status}"
    return Status.FAILED, f"cinder-api GET {base}/ answered HTTP {answer.status}"


@check("api-root")
def api_root(ctx: Context) -> tuple[Status, str]:
    """GET /, which needs no token: what is checked without one, before a token is asked for.
    With a token cached, the authenticated GET that follows asks the same API in one round
    trip instead of two (and GET / is asked there only if that answer needs it)."""
    if ctx.tokens.cached() is not None:
        return Status.SKIPPED, "the authenticated GET with the cached token asks the API"
    return _root(ctx)


def _keystone_answers(ctx: Context) -> bool:
    try:
        return plain_get(ctx, ctx.tokens.credentials().auth_url).status < 500
    except (http.HttpError, OcfError, ValueError):
        return False


@check("api-token")
def api_authenticated(ctx: Context) -> tuple[Status, str]:
    base = api_base(ctx)
    try:
        done = authenticated_get(
            ctx, lambda token: f"{base}/v3/{token.project_id}/types", _SKIP_NOTE, _OUTAGE_NOTE
        )
    except http.HttpError as err:
        if err.kind == "timeout":
            raise Finding(
                Status.FAILED,
                f"cinder-api does not answer GET {base}/v3/<project>/types within "
                f"{ctx.check_timeout():g} s (hung?)",
            ) from None
        raise Finding(
            Status.FAILED, f"cinder-api authenticated GET {base}/v3/<project>/types: {err.message}"
        ) from None
    status, url = done.answer.status, done.url
    if status == 200:
        return (
            Status.OK,
            f"authenticated GET /v3/<project>/types answered 200{'' if done.fresh else ' (cached token)'}",
        )
    if status in (401, 403):
        return Status.FAILED, f"cinder-api rejects a valid Keystone token: HTTP {status} for GET {url}"
    blames_keystone = status == 503 and _MIDDLEWARE_BLAMES_KEYSTONE in done.answer.body
    if status >= 500 and (blames_keystone or not _keystone_answers(ctx)):
        root, detail = _root(ctx)  # api-root was left to this check if the token was cached
        if root is Status.FAILED:
            return root, detail
        why = "its keystonemiddleware cannot have tokens validated" if blames_keystone else (
            "Keystone does not answer either")  # fmt: skip
        return (
            Status.DEGRADED,
            f"cinder-api answered HTTP {status} and {why}: a Keystone outage, not cinder-api's failure",
        )
    return Status.FAILED, f"cinder-api answered HTTP {status} for an authenticated GET {url}"
