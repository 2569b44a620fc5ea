"""The room knowledge graph: canonical entities, the dedup window, versioned deltas, the store."""

from streamre.graph.canonical import EntityResolver, entity_key
from streamre.graph.dedup import DedupWindow
from streamre.graph.room import GraphDelta, GraphSettings, Mention, RoomGraph, edge_id

__all__ = ["DedupWindow", "EntityResolver", "GraphDelta", "GraphSettings", "Mention",
           "RoomGraph", "edge_id", "entity_key"]
