"""HTTP GET for health checks: a small stdlib client for plain http, requests for the rest.

Exports: Response, HttpError, get.

A recurring monitor asks cinder-api two questions over loopback, usually plain http.  requests
costs ~90 ms of imports for that; a socket, one request line and a status line cost ~5 ms.  The
small client handles exactly that case (no TLS, no chunked framing, no redirects followed) and
hands anything else to requests, which stays the client for https and odd answers.  It talks
to _socket, the socket module's C half: the module itself (its enums, selectors) would cost
every monitor ~3 ms of imports.
"""

from __future__ import annotations

import _socket
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Tuple, Union

MAX_BODY = 1 << 20  # health answers are small; a larger one is not read past this


class HttpError(Exception):
    """No HTTP answer: kind is refused, timeout, reset, tls, dns or protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        import json  # noqa: PLC0415 - only checks that read a body need it

        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise HttpError("protocol", f"answer is not JSON ({err})") from None


class _Unsupported(Exception):
    """An answer the small client does not parse: requests takes over."""


def split_url(url: str) -> Tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; IPv6 hosts without brackets."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https") or not rest:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if any(c.isspace() or not c.isprintable() for c in url):
        # A CR or LF would end up in the request line or the Host header.
        raise ValueError(f"whitespace or control characters in URL: {url!r}")
    slash = rest.find("/")
    netloc, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in netloc:
        raise ValueError("credentials in the URL are not supported")
    port = 443 if scheme == "https" else 80
    if netloc.startswith("["):
        host, bracket, tail = netloc[1:].partition("]")
        if not bracket:
            raise ValueError(f"unclosed [ in URL: {url!r}")
        if tail.startswith(":"):
            port = _port(tail[1:])
        elif tail:
            raise ValueError(f"bad host in URL: {url!r}")
    else:
        host, colon, port_text = netloc.partition(":")
        if colon:
            port = _port(port_text)
    if not host:
        raise ValueError(f"no host in URL: {url!r}")
    return scheme, host, port, path


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r}")
    return int(text)


def get(
    url: str,
    timeout: float,
    headers: Optional[Mapping[str, str]] = None,
    ca_file: str = "",
    insecure: bool = False,
) -> Response:
    """GET url within timeout seconds in all; redirects are answers, not followed."""
    scheme, host, port, path = split_url(url)
    if scheme == "http":
        try:
            return _plain_get(host, port, path, headers or {}, timeout)
        except _Unsupported:
            pass
    return _requests_get(url, headers or {}, timeout, ca_file, insecure)


def _plain_get(host: str, port: int, path: str, headers: Mapping[str, str], timeout: float) -> Response:
    deadline = time.monotonic() + timeout
    host_header = f"[{host}]" if ":" in host else host
    lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}:{port}", "Connection: close",
             "Accept: application/json", "User-Agent: cinder-ocf"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        sock = _connect(host, port, max(timeout, 0.001))
        try:
            sock.sendall(request)
            data = _read_answer(sock, deadline)
        finally:
            sock.close()
    except _socket.timeout:
        raise HttpError("timeout", f"no answer from {host_header}:{port} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise HttpError("refused", f"connection to {host_header}:{port} refused") from None
    except ConnectionResetError:
        raise HttpError("reset", f"connection to {host_header}:{port} reset") from None
    except _socket.gaierror as err:
        raise HttpError("dns", f"cannot resolve {host}: {err.strerror}") from None
    except OSError as err:
        raise HttpError("refused", f"cannot connect to {host_header}:{port}: {err.strerror}") from None
    return _parse_answer(data)


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """What socket.create_connection does: each address of host in turn, the first that accepts."""
    name: Union[str, bytes] = host
    if host.isascii():
        name = host.encode("ascii")  # a str host loads the idna codec: ~1 ms per monitor
    error: Optional[OSError] = None
    try:
        addresses = _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM)
    except UnicodeError as err:  # a name IDNA cannot encode (a label over 63 characters)
        raise _socket.gaierror(_socket.EAI_NONAME, f"not a valid host name ({err})") from None
    for family, kind, proto, _, address in addresses:
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as err:
            sock.close()
            error = err
            continue
        return sock
    raise error or OSError(f"no address for {host}")


def _read_answer(sock: _socket.socket, deadline: float) -> bytes:
    data = bytearray()
    while len(data) <= MAX_BODY:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _socket.timeout()
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0 and _complete(data, head_end):
            break
    return bytes(data)


def _complete(data: bytearray, head_end: int) -> bool:
    """True once a Content-Length answer is whole (servers may ignore Connection: close)."""
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(data) - head_end - 4 >= int(value)
    return False


def _parse_answer(data: bytes) -> Response:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        if not data:
            raise HttpError("reset", "connection closed without an answer")
        raise _Unsupported()
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError("protocol", f"not an HTTP answer: {status_line[:80]!r}")
    headers: Dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _Unsupported()
    length = headers.get("content-length", "")
    if length.isdigit():
        if len(body) < int(length):
            raise HttpError("reset", "connection closed in the middle of the answer")
        body = body[: int(length)]
    return Response(int(parts[1]), headers, body)


def _requests_get(
    url: str, headers: Mapping[str, str], timeout: float, ca_file: str, insecure: bool
) -> Response:
    import requests  # noqa: PLC0415 - https and unusual answers only

    verify: Any = False if insecure else (ca_file or True)
    try:
        answer = requests.get(
            url,
            headers=dict(headers),
            timeout=timeout,
            verify=verify,
            allow_redirects=False,
            stream=True,
        )
        body = answer.raw.read(MAX_BODY, decode_content=True)
    except requests.exceptions.SSLError as err:
        raise HttpError("tls", f"TLS failed for {url}: {root_cause(err)}") from None
    except requests.exceptions.Timeout:
        raise HttpError("timeout", f"no answer from {url} within {timeout:g} s") from None
    except requests.exceptions.ConnectionError as err:
        cause = root_cause(err)
        kind = "refused" if "refused" in cause.lower() else "reset"
        raise HttpError(kind, f"cannot talk to {url}: {cause}") from None
    except requests.exceptions.RequestException as err:
        raise HttpError("protocol", f"bad answer from {url}: {root_cause(err)}") from None
    headers_out = {name.lower(): value for name, value in answer.headers.items()}
    return Response(answer.status_code, headers_out, body)


def root_cause(err: BaseException) -> str:
    """The innermost cause of an error, said briefly (a library's wrapping hides it)."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    text = str(err)
    for marker in ("certificate verify failed", "Connection refused", "timed out"):
        if marker.lower() in text.lower():
            return marker
    return text[:200]
