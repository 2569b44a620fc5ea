"""Broker addresses, topic names (PROTOCOL.md) and client construction shared by both ends."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streamre.room_name import check_room

TOPIC_ROOT = "streamre/v1"
SESSION_EXPIRY_S = 24 * 3600  # how long the broker keeps a subscriber's queued messages
BACKOFF_MAX_S = 30.0

log = logging.getLogger("streamre.mqtt")


def topic(room: str, kind: str) -> str:
    """`streamre/v1/{room}/triplets`, `.../graph/delta`, `.../graph/snapshot`; `room` is a
    room name or the wildcard `+`."""
    if room != "+":
        check_room(room)
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


async def stay_connected(
        address: BrokerAddress, identifier: str,
        session: Callable[[aiomqtt.Client, aiomqtt.ProtocolVersion], Awaitable[None]],
        stopped: Callable[[], bool], pause: Callable[[float], Awaitable[None]],
        will: Callable[[], aiomqtt.Will | None] = lambda: None, persistent_session: bool = False,
        on_unavailable: Callable[[Exception], None] = lambda e: None) -> None:
    """Connect and run `session(client, protocol)`; after a broker error, connect again with
    backoff (0.5 s, doubling up to 30 s; `pause` waits) until `session` returns or `stopped()`.
    A broker that refuses MQTT 5 is spoken to in 3.1.1 from then on. Both the publisher and the
    subscriber live in this loop."""
    protocol, backoff = aiomqtt.ProtocolVersion.V5, 0.5
    while not stopped():
        try:
            async with address.client(identifier, protocol, will(), persistent_session) as client:
                backoff = 0.5
                await session(client, protocol)
                return
        except aiomqtt.MqttError as e:
            if protocol == aiomqtt.ProtocolVersion.V5 and unsupported_protocol(e):
                log.info("broker refuses MQTT 5; using 3.1.1")
                protocol = aiomqtt.ProtocolVersion.V311
                continue
            if stopped():
                return
            log.warning("MQTT broker %s:%d unavailable (%s); retrying in %.1f s",
                        address.host, address.port, e, backoff)
            on_unavailable(e)
            await pause(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)


def publish_properties(room: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("streamre-protocol", "1"), ("room", room)]
    return props
