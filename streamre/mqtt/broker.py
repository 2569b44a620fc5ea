"""Broker addresses, topic names (PROTOCOL.md) and client construction shared by both ends."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPIC_ROOT = "streamre/v1"
SESSION_EXPIRY_S = 24 * 3600  # how long the broker keeps a subscriber's queued messages


def topic(room: str, kind: str) -> str:
    """`streamre/v1/{room}/triplets`, `.../graph/delta`, `.../graph/snapshot`."""
    return f"{TOPIC_ROOT}/{room}/{kind}"


def status_topic(server_id: str) -> str:
    return f"{TOPIC_ROOT}/status/{server_id}"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """`mqtt://[user:pass@]host[:1883]` or `mqtts://[user:pass@]host[:8883]`."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"MQTT broker URL must be mqtt://host:port or mqtts://host:port, "
                             f"got {url!r}")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"bad port in MQTT URL {url!r}") from None
        return cls(parts.hostname, port, tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def client(self, identifier: str, protocol: aiomqtt.ProtocolVersion,
               will: aiomqtt.Will | None = None, persistent_session: bool = False
               ) -> aiomqtt.Client:
        kwargs = {}
        if persistent_session:  # the broker keeps QoS 1 messages for us while we are away
            if protocol == aiomqtt.ProtocolVersion.V5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                kwargs.update(clean_start=False, properties=props)
            else:
                kwargs.update(clean_session=False)
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password,
            identifier=identifier, protocol=protocol, will=will, keepalive=30, timeout=10,
            tls_context=ssl.create_default_context() if self.tls else None, **kwargs)


def unsupported_protocol(error: aiomqtt.MqttError) -> bool:
    """The broker refused MQTT 5: try again with 3.1.1."""
    text = str(error).lower()
    return "unsupported protocol" in text or "protocol version" in text


def publish_properties(room: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("streamre-protocol", "1"), ("room", room)]
    return props
