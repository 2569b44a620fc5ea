"""`streamre subscribe`: keep a persistent copy of room graphs and transcripts from the MQTT
broker.

A persistent MQTT session (QoS 1, fixed client id) lets the broker queue messages while we are
away; `GraphMirror` decides what each message changes, and the store writes it in one
transaction before the next message is taken. Restart-safe: rooms resume from their stored
version. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
from pathlib import Path

import aiomqtt

from streamre.mqtt.broker import BrokerAddress, stay_connected, topic
from streamre.mqtt.mirror import GraphMirror
from streamre.mqtt.mirror_store import MirrorStore
from streamre.graph.transcript import Said
from streamre.room_name import ROOM_RULE, check_room, valid_room

log = logging.getLogger("streamre.subscribe")


async def subscribe(url: str, room: str, db: str, client_id: str | None = None,
                    stop: asyncio.Event | None = None) -> int:
    if room != "+" and not valid_room(room):
        raise ValueError(f"--room is + for every room, or a room name: {ROOM_RULE}")
    address = BrokerAddress.parse(url)
    store = MirrorStore(Path(db))
    mirror = GraphMirror()
    for name in store.rooms():
        mirror.restore(store.load(name))
    # The same subscriber (same db and rooms) reconnects to the same broker session.
    client_id = client_id or "streamre-sub-" + hashlib.sha1(
        f"{Path(db).resolve()}|{room}".encode()).hexdigest()[:12]
    stop = stop or _stop_on_signals()

    async def session(client: aiomqtt.Client, protocol: aiomqtt.ProtocolVersion) -> None:
        for kind in ("graph/snapshot", "graph/delta", "transcript"):
            await client.subscribe(topic(room, kind), qos=1)
        log.info("subscribed to %s:%d rooms=%s", address.host, address.port, room)
        receiver = asyncio.create_task(_receive(client, mirror, store))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        receiver.cancel()
        if receiver.done() and not receiver.cancelled() and receiver.exception():
            raise receiver.exception()

    async def pause(seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    try:
        await stay_connected(address, client_id, session, stop.is_set, pause,
                             persistent_session=True)
    finally:
        store.close()
    return 0


async def _receive(client: aiomqtt.Client, mirror: GraphMirror, store: MirrorStore) -> None:
    async for message in client.messages:
        try:
            payload = json.loads(message.payload)
            if str(message.topic).endswith("/transcript"):
                room = str(message.topic).split("/")[2]
                store.save_said(check_room(room), Said.from_json(payload))
                continue
            change = mirror.apply(payload)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("ignoring a bad message on %s: %s", message.topic, e)
            continue
        if change is not None:
            store.save(change)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
