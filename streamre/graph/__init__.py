"""The room knowledge graph: triplets in, versioned snapshots and deltas out."""

from streamre.graph.room import GraphDelta, Mention, RoomGraph, edge_id, entity_key

__all__ = ["GraphDelta", "Mention", "RoomGraph", "edge_id", "entity_key"]
