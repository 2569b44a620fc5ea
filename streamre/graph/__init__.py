"""The room knowledge graph: canonical entities, the dedup window, versioned deltas, the store."""

from streamre.graph.canonical import EntityResolver, entity_key
from streamre.graph.dedup import DedupWindow
from streamre.graph.entries import Mention
from streamre.graph.room import GraphDelta, RoomGraph, edge_id
from streamre.graph.settings import GraphSettings

__all__ = ["DedupWindow", "EntityResolver", "GraphDelta", "GraphSettings", "Mention",
           "RoomGraph", "edge_id", "entity_key"]
