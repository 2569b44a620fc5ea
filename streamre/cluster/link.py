"""The cluster's MQTT side: ops in, heads out, repairs both ways.

A connection of its own to the broker (client id `streamre-cluster-{cluster}-{origin}`, a
persistent session, so the broker queues ops while this instance is away), subscribed at QoS 1
to every room's ops topic, to the members' topics and to the rooms' retained snapshots (to
know the last version another lead published). This instance's own ops leave through the
publisher's persistent outbox (`MqttPublisher.publish_op`), so a broker outage or a restart
loses none of them. Its heads are published retained on its member topic, with an expiry of
the idle time, whenever they change (at most every `heads_every_s`) and at least every
`REFRESH_S`; its last will there says `offline`. Repairs (ops a peer's heads show it lacks)
are published straight on this connection: they can always be read again from the journal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streamre.cluster.heads import repairs
from streamre.cluster.node import ClusterNode
from streamre.graph.ops import BadOp, Op
from streamre.graph.store import GraphStore
from streamre.mqtt.broker import TOPIC_ROOT, BrokerAddress, stay_connected, topic
from streamre.room_name import check_room

log = logging.getLogger("streamre.cluster")

REFRESH_S = 30.0  # heads are published at least this often
SILENT_S = 3 * REFRESH_S  # a member not heard from for this long is taken as gone
REPAIR_GRACE_S = 2.0  # an op merged more recently than this may still be on its way
REPAIR_AGAIN_S = 5.0  # the same gap is repaired again after this, if it is still there


def ops_topic(cluster: str, room: str) -> str:
    """`streamre/v1/cluster/{cluster}/{room}/ops`; `room` may be the wildcard `+`."""
    if room != "+":
        check_room(room)
    return f"{TOPIC_ROOT}/cluster/{cluster}/{room}/ops"


def member_topic(cluster: str, origin: str) -> str:
    """Where an instance says it is online (with its heads) or offline (its last will);
    `origin` may be the wildcard `+`."""
    return f"{TOPIC_ROOT}/cluster/{cluster}/members/{origin}"


def valid_heads(heads: object) -> bool:
    """A member's heads as published: {room: {origin: seq}}."""
    return isinstance(heads, dict) and all(
        isinstance(origins, dict) and all(isinstance(seq, int) for seq in origins.values())
        for origins in heads.values())


class ClusterLink:
    def __init__(self, url: str, node: ClusterNode, store: GraphStore,
                 merge: Callable[[Op], bool], on_lead: Callable[[], None],
                 heads_every_s: float = 0.5, metrics=None) -> None:
        self.address = BrokerAddress.parse(url)
        self.node, self.store, self._merge, self._on_lead = node, store, merge, on_lead
        self.heads_every_s, self.metrics = heads_every_s, metrics
        self.connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._repaired: dict[tuple, tuple[int, float]] = {}  # (room, origin, from) -> (to, when)
        self._pending: dict[str, asyncio.Task] = {}  # peer -> its repair, waiting out the grace
        self._heard: dict[str, float] = {}  # member -> when it last said it is online

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-link")

    async def _run(self) -> None:
        will = aiomqtt.Will(member_topic(self.node.name, self.node.origin),
                            b'{"state":"offline"}', 1, True)
        await stay_connected(
            self.address, f"streamre-cluster-{self.node.name}-{self.node.origin}",
            self._session, lambda: self._closing, asyncio.sleep, will=lambda: will,
            persistent_session=True)

    async def _session(self, client: aiomqtt.Client, protocol: aiomqtt.ProtocolVersion) -> None:
        v5 = protocol == aiomqtt.ProtocolVersion.V5
        for name in (ops_topic(self.node.name, "+"), member_topic(self.node.name, "+"),
                     topic("+", "graph/snapshot")):
            await client.subscribe(name, qos=1)
        log.info("cluster %s: joined as %s", self.node.name, self.node.origin)
        self.connected.set()
        heads = asyncio.create_task(self._publish_heads(client, v5))
        try:
            async for message in client.messages:
                peer = self.take(str(message.topic), message.payload)
                if peer is not None and peer not in self._pending:
                    self._pending[peer] = asyncio.create_task(self._repair_soon(client, peer))
        finally:
            heads.cancel()
            for task in self._pending.values():
                task.cancel()
            self._pending.clear()
            self.connected.clear()

    def take(self, name: str, payload: bytes) -> str | None:
        """One message from the broker; the peer that lacks ops this instance should resend,
        if any."""
        levels = name.split("/")
        try:
            data = json.loads(payload) if payload else None
        except ValueError:
            data = None
        if levels[-1] == "ops" and levels[2] == "cluster":
            try:
                op = Op.from_json(data)
            except BadOp as e:
                self._count("bad")
                self.node.bad_ops += 1
                if self.node.bad_ops == 1 or self.node.bad_ops % 1000 == 0:
                    log.warning("cluster %s: %d bad op(s) ignored; latest on %s: %s",
                                self.node.name, self.node.bad_ops, name, e)
                return None
            try:
                self._count("merged" if self._merge(op) else "duplicate")
            except Exception:  # not journaled (a full disk): a repair brings it again
                self._count("failed")
                log.exception("cluster %s: could not merge op %s/%d of room %s",
                              self.node.name, op.origin, op.seq, op.room)
            return None
        if levels[-2] == "members":
            return self._member(levels[-1], data)
        if levels[-1] == "snapshot" and isinstance(data, dict) and \
                isinstance(data.get("version"), int):
            room = levels[2]
            self.node.published[room] = max(self.node.published.get(room, -1), data["version"])
        return None

    def _member(self, origin: str, data: object) -> str | None:
        if origin == self.node.origin:
            return None
        was_lead = self.node.lead
        online = isinstance(data, dict) and data.get("state") == "online" and \
            valid_heads(data.get("heads"))
        if online:
            self.node.online[origin] = data["heads"]
            self._heard[origin] = time.monotonic()
        elif self.node.online.pop(origin, None) is not None:
            log.info("cluster %s: %s went offline", self.node.name, origin)
        self._lead_changed(was_lead)
        return origin if online and self._repairs(origin) else None

    def forget_silent(self) -> None:
        """Members that said they were online but have not refreshed their heads for
        `SILENT_S` (their broker died with them, so no last will came) are taken as gone."""
        was_lead = self.node.lead
        now = time.monotonic()
        for origin in [o for o in self.node.online if now - self._heard.get(o, now) > SILENT_S]:
            del self.node.online[origin]
            log.info("cluster %s: %s silent for %.0f s, taken as gone", self.node.name,
                     origin, SILENT_S)
        self._lead_changed(was_lead)

    def _lead_changed(self, was_lead: bool) -> None:
        if self.node.lead and not was_lead:
            log.info("cluster %s: %s now publishes the rooms' graphs", self.node.name,
                     self.node.origin)
            self._on_lead()

    def _repairs(self, peer: str) -> list[tuple[str, str, int, int]]:
        """What `peer` lacks, by its latest heads, that this instance should resend."""
        mine = self.node.my_heads()
        return repairs(self.node.origin, mine, self.node.online.get(peer, {}),
                       {**self.node.online, self.node.origin: mine})

    async def _repair_soon(self, client: aiomqtt.Client, peer: str) -> None:
        """After the grace (ops in flight arrive, the peer's heads move), resend what `peer`
        still lacks."""
        try:
            await asyncio.sleep(REPAIR_GRACE_S)
            for room, origin, after, up_to in self._repairs(peer):
                await self._repair(client, room, origin, after, up_to)
        finally:
            self._pending.pop(peer, None)

    async def _repair(self, client: aiomqtt.Client, room: str, origin: str, after: int,
                      up_to: int) -> None:
        now = time.time()
        last = self._repaired.get((room, origin, after))
        if last is not None and last[0] >= up_to and now - last[1] < REPAIR_AGAIN_S:
            return
        sent = 0
        for op in self.store.ops(room, origin=origin, after=after):
            if op.seq > up_to:
                break
            await client.publish(ops_topic(self.node.name, room),
                                 json.dumps(op.to_json()).encode(), qos=1, timeout=10)
            sent += 1
        self._repaired[(room, origin, after)] = (up_to, now)
        if self.metrics:
            self.metrics.cluster_repairs.inc(sent)
        if sent:
            log.info("cluster %s: resent %d op(s) of %s in room %s", self.node.name, sent,
                     origin, room)

    def _count(self, outcome: str) -> None:
        if self.metrics:
            self.metrics.cluster_ops.labels(outcome).inc()

    async def _publish_heads(self, client: aiomqtt.Client, v5: bool) -> None:
        last, sent_at = None, 0.0
        while True:
            heads = self.node.my_heads()
            if heads != last or time.monotonic() - sent_at >= REFRESH_S:
                payload = {"state": "online", "origin": self.node.origin, "heads": heads}
                properties = None
                if v5:
                    properties = Properties(PacketTypes.PUBLISH)
                    properties.MessageExpiryInterval = max(1, int(self.node.idle_s))
                await client.publish(member_topic(self.node.name, self.node.origin),
                                     json.dumps(payload).encode(), qos=1, retain=True,
                                     properties=properties, timeout=10)
                last, sent_at = heads, time.monotonic()
            self.forget_silent()
            await asyncio.sleep(self.heads_every_s)

    async def close(self, timeout: float = 5.0) -> None:
        """Leave: say `offline` (retained), then disconnect."""
        if self._task is None:
            return
        self._closing = True
        self._task.cancel()
        try:
            await asyncio.wait_for(self._task, timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        try:
            async with self.address.client(f"streamre-cluster-{self.node.name}-"
                                           f"{self.node.origin}", aiomqtt.ProtocolVersion.V5,
                                           persistent_session=True) as client:
                await client.publish(member_topic(self.node.name, self.node.origin),
                                     b'{"state":"offline"}', qos=1, retain=True, timeout=5)
        except (aiomqtt.MqttError, OSError):
            pass
