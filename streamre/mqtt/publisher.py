"""The server's MQTT publisher: its own task, draining the persistent outbox in order.

Triplets, transcript lines and graph deltas go through the outbox (QoS 1, not retained). Each
room's snapshot is retained and published from the live graph at most every
`snapshot_interval_s`, after the outbox has drained, and for every room again after each
(re)connection, so a subscriber that missed anything resyncs. `streamre/v1/status/{server_id}`
is `online` while connected, and `offline` as the last will or on a clean shutdown. A slow or
absent broker never blocks the caller: `publish_*` only append to the outbox.

In a cluster the outbox also carries this instance's ops to the others (`publish_op`), and
only the cluster's lead publishes the rooms' graphs (`publishes_graph`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

import aiomqtt

from streamre.mqtt.broker import (
    BrokerAddress, publish_properties, status_topic, stay_connected, topic)
from streamre.mqtt.outbox import MqttOutbox

log = logging.getLogger("streamre.mqtt")



class MqttPublisher:
    def __init__(self, url: str, server_id: str, outbox: MqttOutbox,
                 snapshot: Callable[[str], dict], metrics=None,
                 snapshot_interval_s: float = 2.0) -> None:
        self.address = BrokerAddress.parse(url)
        self.server_id = server_id
        self.outbox = outbox
        self._snapshot = snapshot
        self.metrics = metrics
        self.snapshot_interval_s = snapshot_interval_s
        self.connected = asyncio.Event()
        self._protocol = aiomqtt.ProtocolVersion.V5
        self._wakeup = asyncio.Event()
        self._dirty: set[str] = set()  # rooms whose retained snapshot is behind
        self._last_snapshot: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self._closing = False
        self.publishes_graph: Callable[[], bool] = lambda: True

    # -- called by the server (never blocks) ------------------------------------------------

    def publish_triplets(self, room: str, message: dict) -> None:
        self._put(room, "triplets", message)

    def publish_transcript(self, room: str, message: dict) -> None:
        self._put(room, "transcript", message)

    def publish_delta(self, room: str, message: dict) -> None:
        self._put(room, "graph/delta", message)
        self._dirty.add(room)

    def publish_op(self, name: str, message: dict) -> None:
        """A cluster op, on its ops topic `name`."""
        self._put_topic(name, message)

    def snapshot_soon(self, room: str) -> None:
        """Publish `room`'s retained snapshot at the next chance (its graph was replayed)."""
        self._dirty.add(room)
        self._wakeup.set()

    def _put(self, room: str, kind: str, message: dict) -> None:
        self._put_topic(topic(room, kind), message)

    def _put_topic(self, name: str, message: dict) -> None:
        if not self.outbox.put(name, json.dumps(message).encode()):
            if self.metrics:
                self.metrics.mqtt_refused.inc()
            if self.outbox.refused == 1 or self.outbox.refused % 1000 == 0:
                log.warning("MQTT outbox full (%d messages): %d message(s) refused so far; "
                            "subscribers will resync from the next snapshot",
                            self.outbox.max_messages, self.outbox.refused)
        if self.metrics:
            self.metrics.mqtt_outbox.set(len(self.outbox))
        self._wakeup.set()

    # -- the task ---------------------------------------------------------------------------

    def start(self, rooms: list[str]) -> None:
        self._dirty.update(rooms)
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def _run(self) -> None:
        await stay_connected(
            self.address, f"streamre-{self.server_id}", self._session, lambda: self._closing,
            asyncio.sleep, will=lambda: aiomqtt.Will(status_topic(self.server_id),
                                                     b'{"state":"offline"}', 1, True),
            on_unavailable=self._unavailable)

    async def _session(self, client: aiomqtt.Client, protocol: aiomqtt.ProtocolVersion) -> None:
        self._protocol = protocol
        log.info("MQTT connected to %s:%d (MQTT %s)", self.address.host, self.address.port,
                 "5" if self._v5 else "3.1.1")
        self.connected.set()
        try:
            await self._send(client, status_topic(self.server_id), b'{"state":"online"}', True,
                             None)
            self._dirty.update(self._last_snapshot)  # the broker may have lost them
            await self._drain_forever(client)
        finally:
            self.connected.clear()

    def _unavailable(self, error: Exception) -> None:
        if self.metrics:
            self.metrics.mqtt_reconnects.inc()

    @property
    def _v5(self) -> bool:
        return self._protocol == aiomqtt.ProtocolVersion.V5

    async def _drain_forever(self, client: aiomqtt.Client) -> None:
        while True:
            await self._drain(client)
            if self._closing:
                await self._send(client, status_topic(self.server_id), b'{"state":"offline"}',
                                 True, None)
                return
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.snapshot_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Everything in the outbox, oldest first, each removed once acknowledged; then the
        snapshots that are due."""
        while rows := self.outbox.peek(100):
            for seq, name, payload, retain in rows:
                await self._send(client, name, payload, retain, _room_of(name))
                self.outbox.remove(seq)
            if self.metrics:
                self.metrics.mqtt_outbox.set(len(self.outbox))
        now = time.monotonic()
        if not self.publishes_graph():  # another instance of the cluster does; kept dirty
            return
        for room in sorted(self._dirty):
            if self._closing or now - self._last_snapshot.get(room, -1e9) >= \
                    self.snapshot_interval_s:
                snapshot = json.dumps(self._snapshot(room)).encode()
                await self._send(client, topic(room, "graph/snapshot"), snapshot, True, room)
                self._last_snapshot[room] = now
                self._dirty.discard(room)

    async def _send(self, client: aiomqtt.Client, name: str, payload: bytes, retain: bool,
                    room: str | None) -> None:
        properties = publish_properties(room or "") if self._v5 else None
        await client.publish(name, payload, qos=1, retain=retain, properties=properties,
                             timeout=10)
        if self.metrics:
            self.metrics.mqtt_published.inc()

    async def close(self, timeout: float = 10.0) -> None:
        """Drain what is queued (while the broker is there), final snapshots, `offline`."""
        if self._task is None:
            return
        self._closing = True
        self._dirty.update(self._last_snapshot)
        self._wakeup.set()
        if not self.connected.is_set():
            self._task.cancel()
        try:
            await asyncio.wait_for(self._task, timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        if len(self.outbox):
            log.warning("MQTT publisher stopped with %d message(s) still in the outbox; they "
                        "are sent after the next start", len(self.outbox))
        self.outbox.close()


def _room_of(name: str) -> str:
    """The room of a topic: `streamre/v1/{room}/...` or `streamre/v1/cluster/{c}/{room}/ops`."""
    levels = name.split("/")
    return levels[4] if levels[2] == "cluster" and len(levels) == 6 else levels[2]
