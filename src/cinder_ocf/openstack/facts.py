"""The facts of cinder.conf the checks need, typed, and their cache in HA_RSCTMP.

Exports: Facts, FactsCache.

oslo.config costs a monitor ~80 ms, so what an agent derives from cinder.conf is kept in a
private JSON file under a fingerprint of the parameters and files it came from, and parsed
again only when one of them changed.  Never a secret: the facts are stored in a file.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cinder_ocf import trusted

Endpoint = tuple[str, int]


class Facts(NamedTuple):
    api_url: str = ""  # where this node's cinder-api answers
    backends: tuple[str, ...] = ()  # enabled_backends
    service_hosts: tuple[str, ...] = ()  # the os-services hosts the service reports as
    brokers: tuple[Endpoint, ...] = ()  # (host, port) of transport_url
    addresses: tuple[Endpoint, ...] = ()  # their addresses when the facts were derived
    amqp_skip: str = ""  # why there is no AMQP connection to check, if there is none
    reconnect_pause: float = 31.0  # oslo.messaging's longest pause between reconnections
    report_interval: float = 10.0  # seconds between two heartbeats in os-services
    heartbeat_timeout: float = 60.0  # [oslo_messaging_rabbit] heartbeat_timeout_threshold
    tls: bool = False  # the broker is spoken to over TLS
    ca_file: str = ""  # [oslo_messaging_rabbit] ssl_ca_file
    cluster: str = ""  # [DEFAULT] cluster (active/active)
    coordination_scheme: str = ""  # [coordination] backend_url's scheme
    coordination: tuple[Endpoint, ...] = ()  # and its (host, port)s

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Facts:
        """ValueError for a record this version did not write."""
        try:
            return cls(
                api_url=str(value["api_url"]),
                backends=tuple(str(b) for b in value["backends"]),
                service_hosts=tuple(str(h) for h in value["service_hosts"]),
                brokers=tuple((str(h), int(p)) for h, p in value["brokers"]),
                addresses=tuple((str(h), int(p)) for h, p in value["addresses"]),
                amqp_skip=str(value["amqp_skip"]),
                reconnect_pause=float(value["reconnect_pause"]),
                report_interval=float(value["report_interval"]),
                heartbeat_timeout=float(value["heartbeat_timeout"]),
                tls=bool(value["tls"]),
                ca_file=str(value["ca_file"]),
                cluster=str(value["cluster"]),
                coordination_scheme=str(value["coordination_scheme"]),
                coordination=tuple((str(h), int(p)) for h, p in value["coordination"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a facts record: {err}") from None


class FactsCache:
    def __init__(self, path: str, agent: str, inputs: str) -> None:
        self.path = path
        self.agent = agent
        self.inputs = inputs

    def load(self) -> Facts | None:
        record = trusted.read_json(self.path)
        if record is None or record.get("inputs") != self.inputs or record.get("agent") != self.agent:
            return None
        try:
            return Facts.from_json(record.get("facts") or {})
        except ValueError:
            return None

    def store(self, facts: Facts) -> None:
        """Raises OSError."""
        trusted.write_json(self.path, {"inputs": self.inputs, "agent": self.agent, "facts": facts.to_json()})
