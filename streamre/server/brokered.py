"""The server's side of the broker: the MQTT publisher and, with `--cluster`, this instance's
place in its cluster (streamre.cluster), built from the settings and the data dir."""

from __future__ import annotations

import logging
import re
import secrets
import socket
from pathlib import Path

from streamre.cluster.link import ClusterLink, ops_topic
from streamre.cluster.node import ClusterNode
from streamre.config import ServeConfig
from streamre.graph.store import GraphStore
from streamre.mqtt.outbox import MqttOutbox
from streamre.mqtt.publisher import MqttPublisher
from streamre.server.rooms import Rooms

log = logging.getLogger("streamre.server")

OUTBOX_NAME = "mqtt-outbox.db"
ORIGIN_TAG_NAME = "cluster-origin-tag"


def server_id(config: ServeConfig) -> str:
    return config.server_id or re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or \
        "streamre"


def publisher(config: ServeConfig, metrics, rooms: "callable") -> MqttPublisher | None:
    """The publisher of `config.mqtt` (None without one); `rooms()` gives the server's
    `Rooms` once they exist."""
    if not config.mqtt:
        return None
    outbox = MqttOutbox(Path(config.data_dir) / OUTBOX_NAME, config.mqtt_outbox_max)
    return MqttPublisher(config.mqtt, server_id(config), outbox,
                         lambda room: rooms().snapshot_to_publish(room), metrics,
                         config.mqtt_snapshot_interval_s)


def cluster_node(config: ServeConfig) -> ClusterNode | None:
    """This instance in `config.cluster` (None alone). Its origin is the server id and a tag
    made once per data dir: a wiped data dir never reuses old sequence numbers."""
    if not config.cluster:
        return None
    tag_file = Path(config.data_dir) / ORIGIN_TAG_NAME
    if not tag_file.exists():
        tag_file.parent.mkdir(parents=True, exist_ok=True)
        tag_file.write_text(secrets.token_hex(3))
    origin = f"{server_id(config)}.{tag_file.read_text().strip()}"[-64:].lstrip("._-")
    return ClusterNode(config.cluster, origin, config.cluster_idle_s)


def join_cluster(config: ServeConfig, node: ClusterNode, store: GraphStore, rooms: Rooms,
                 publisher: MqttPublisher, metrics) -> ClusterLink:
    """Start the link: heads from the journal, own ops out through the outbox, only the
    lead publishing the rooms' graphs."""
    for room, origin, seq, merged in store.op_ids():
        node.heads.add(room, origin, seq, merged)
    alone = [r for r in store.rooms() if not store.clustered(r) and next(store.entries(r), None)]
    if alone:  # docs/cluster.md: members start on fresh data dirs
        log.warning("cluster %s: %d room(s) journaled here before joining it are not shared, "
                    "and show only what the cluster adds: %s", node.name, len(alone),
                    ", ".join(alone[:10]))

    def send(op) -> None:
        metrics.cluster_ops.labels("local").inc()
        publisher.publish_op(ops_topic(node.name, op.room), op.to_json())

    node.send, node.on_replay = send, metrics.cluster_replays.inc
    publisher.publishes_graph = lambda: node.lead
    metrics.cluster_members.set_function(lambda: len(node.online))
    metrics.cluster_lead.set_function(lambda: int(node.lead))

    def on_lead() -> None:
        for room in rooms.names():
            publisher.snapshot_soon(room)

    link = ClusterLink(config.mqtt, node, store, rooms.merge, on_lead, metrics=metrics)
    link.start()
    return link
