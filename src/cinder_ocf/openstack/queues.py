"""How many consumers the broker counts on a service's queues: how many servers of one service
host listen to it, which os-services cannot tell (it has one row per host, whoever writes it).

Exports: consumer_counts, QueueError.

Through py-amqp (the AMQP 0-9-1 client under oslo.messaging's rabbit driver, so on every node
that runs cinder): a passive queue declare answers a queue's consumer count and creates
nothing.  The whole exchange runs in a worker thread joined within the check's time, since
py-amqp's timeouts bound each read, not the conversation.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Sequence
from typing import Any

from cinder_ocf.openstack.broker import Transport, format_hostport


class QueueError(Exception):
    """The broker could not be asked (kind: unreachable, refused, missing)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def consumer_counts(
    transport: Transport, endpoints: Sequence[tuple[str, int]], choices: Sequence[Sequence[str]],
    tls: bool, ca_file: str, timeout: float,
) -> dict[str, int | None]:  # fmt: skip
    """{queue: consumers, or None when the queue does not exist} for each choice's queues in
    turn up to the first that exists (the rest are not asked: a declare is a round trip, and a
    service has one choice per backend), asked of the first broker of endpoints that lets us
    in, all within timeout seconds."""
    try:
        import amqp  # noqa: PLC0415 - ~15 ms, only for the services whose queues are counted
    except ImportError:
        raise QueueError("missing", "py-amqp is not installed on this node") from None
    outcome: dict[str, Any] = {}
    logins = dict(zip(transport.hosts, transport.logins))

    def ask() -> None:
        problems = []
        for host, port in endpoints:
            user, password = next(
                (login for (h, _), login in logins.items() if h == host), transport.logins[0]
            )
            try:
                outcome["counts"] = _ask(amqp, host, port, user, password, transport.virtual_host,
                                         choices, tls, ca_file, timeout)  # fmt: skip
                return
            except amqp.exceptions.AccessRefused:
                outcome["refused"] = format_hostport(host, port)
                return
            except Exception as err:  # whatever a broker or the network does: try the next
                problems.append(f"{format_hostport(host, port)}: {str(err) or type(err).__name__}")
        outcome["problems"] = problems

    worker = threading.Thread(target=ask, name="amqp", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.1))
    if worker.is_alive():  # the thread dies with the agent's process, which answers now
        raise QueueError("unreachable", f"no broker answered within {timeout:g} s")
    if "counts" in outcome:
        counts: dict[str, int | None] = outcome["counts"]
        return counts
    if "refused" in outcome:
        raise QueueError("refused", f"the broker at {outcome['refused']} refused transport_url's credentials")
    raise QueueError("unreachable", "; ".join(outcome.get("problems") or ["no broker to ask"]))


def _ask(
    amqp: Any, host: str, port: int, user: str, password: str, vhost: str,
    choices: Sequence[Sequence[str]], tls: bool, ca_file: str, timeout: float,
) -> dict[str, int | None]:  # fmt: skip
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context(cafile=ca_file or None)
    connection = amqp.Connection(
        host=format_hostport(host, port), userid=user, password=password, virtual_host=vhost,
        ssl=context or False, connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
        heartbeat=0, client_properties={"connection_name": "cinder-ocf monitor"},
    )  # fmt: skip
    counts: dict[str, int | None] = {}
    try:
        connection.connect()
        # One channel for all the declares, a round trip each (opening and closing one per
        # queue made it three: ~1 ms a queue instead of ~0.3).  A missing queue's 404 closes
        # the channel, which py-amqp reopens before it raises NotFound.
        channel = connection.channel()
        for choice in choices:
            for queue in choice:
                try:
                    counts[queue] = int(channel.queue_declare(queue=queue, passive=True).consumer_count)
                    break
                except amqp.exceptions.NotFound:
                    counts[queue] = None
    finally:
        if connection.connected:
            connection.close()
        else:
            connection.collect()
    return counts
