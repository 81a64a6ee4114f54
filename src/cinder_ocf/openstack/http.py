"""HTTP GET for the health checks: the stdlib's http.client, one deadline for the whole request.

Exports: Response, HttpError, get, split_url, root_cause.

A socket timeout bounds each read, not the request: an API (or a proxy in front of it) that
sends its answer a byte at a time would keep a monitor alive until Pacemaker kills it.  A
timer therefore shuts the connection down when the check's time is up, whatever phase the
request is in.  http and https alike; TLS is verified against ca_file or the system's CAs
unless insecure is set.  Redirects are answers, not followed.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

MAX_BODY = 1 << 20  # health answers are small; a larger one is not read past this


class HttpError(Exception):
    """No HTTP answer: kind is refused, timeout, reset, tls, dns or protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Response(NamedTuple):
    status: int
    headers: Mapping[str, str] = MappingProxyType({})
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise HttpError("protocol", f"answer is not JSON ({err})") from None


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; IPv6 hosts without brackets.

    ValueError for anything the checks cannot use: another scheme, no host, a bad port,
    credentials in the URL, white space or control characters (a CR or LF would end up in the
    request line).
    """
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"whitespace or control characters in URL: {url!r}")
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    if not sep or scheme.lower() not in ("http", "https") or not netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if "@" in netloc:
        raise ValueError("credentials in the URL are not supported")
    if netloc.startswith("[") and "]" not in netloc:
        raise ValueError(f"unclosed [ in URL: {url!r}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        port_text = netloc.rpartition("]")[2].rpartition(":")[2]
        raise ValueError(f"bad port {port_text!r}") from None
    if port == 0:
        raise ValueError("bad port '0'")
    scheme = scheme.lower()
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"no host in URL: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def tls_context(ca_file: str, insecure: bool) -> ssl.SSLContext:
    """OSError for a ca_file that is not a regular file (a FIFO would hang the check)."""
    if ca_file and not os.path.isfile(ca_file):
        raise FileNotFoundError(f"{ca_file} is not a regular file")
    context = ssl.create_default_context(cafile=ca_file or None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def get(
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    ca_file: str = "",
    insecure: bool = False,
) -> Response:
    """GET url within timeout seconds in all."""
    scheme, host, port, path = split_url(url)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    timeout = max(timeout, 0.001)
    conn: http.client.HTTPConnection
    if scheme == "https":
        try:
            context = tls_context(ca_file, insecure)
        except (OSError, ssl.SSLError) as err:
            raise HttpError("tls", f"cannot use ca_file {ca_file}: {root_cause(err)}") from None
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        conn.request(
            "GET", path, headers={"Accept": "application/json", "User-Agent": "cinder-ocf", **(headers or {})}
        )
        answer = conn.getresponse()
        body = answer.read(MAX_BODY)
        if expired.is_set():
            raise TimeoutError()
        if len(body) < MAX_BODY and answer.length:
            raise http.client.IncompleteRead(body, answer.length)
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)
    except Exception as err:
        raise _classify(err, expired.is_set(), url, where, timeout) from None
    finally:
        timer.cancel()
        conn.close()


def _classify(err: Exception, expired: bool, url: str, where: str, timeout: float) -> HttpError:
    """The HttpError that says what happened to the request, briefly."""
    if expired or isinstance(err, (TimeoutError, socket.timeout)):
        return HttpError("timeout", f"no answer from {where} within {timeout:g} s")
    if isinstance(err, ssl.SSLError):
        return HttpError("tls", f"TLS failed for {url}: {root_cause(err)}")
    if isinstance(err, ConnectionRefusedError):
        return HttpError("refused", f"connection to {where} refused")
    if isinstance(err, (socket.gaierror, UnicodeError)):
        host = where.rsplit(":", 1)[0].strip("[]")
        return HttpError("dns", f"cannot resolve {host}: {getattr(err, 'strerror', None) or err}")
    if isinstance(err, http.client.RemoteDisconnected):
        return HttpError("reset", "connection closed without an answer")
    if isinstance(err, http.client.IncompleteRead):
        return HttpError("reset", "connection closed in the middle of the answer")
    if isinstance(err, ConnectionResetError):
        return HttpError("reset", f"connection to {where} reset")
    if isinstance(err, http.client.BadStatusLine):
        return HttpError(
            "protocol", f"not an HTTP answer: {str(err.args[0] if err.args else '').strip()[:80]!r}"
        )
    if isinstance(err, http.client.HTTPException):
        return HttpError("protocol", f"not an HTTP answer from {where}: {root_cause(err)[:80]}")
    if isinstance(err, OSError):
        return HttpError("refused", f"cannot connect to {where}: {err.strerror or err}")
    raise err


def root_cause(err: BaseException) -> str:
    """The innermost cause of an error, said briefly (a library's wrapping hides it)."""
    chain = [err]
    while True:
        # A context its raiser suppressed (`raise ... from None`, six.raise_from(e, None) in
        # urllib3 1.26) is an earlier, unrelated failure: the chain ends there.
        below = (
            err.__cause__
            if err.__cause__ is not None
            else None
            if err.__suppress_context__
            else err.__context__
        )
        if below is None or below in chain:
            break
        chain.append(below)
        err = below
    for marker in ("certificate verify failed", "Connection refused", "timed out"):
        if any(marker.lower() in str(link).lower() for link in chain):
            return marker
    return str(err)[:200]
