"""A room's graph written out as GraphML, from its node-link JSON (`RoomGraph.to_json`, or a
subscriber's mirror): what `?format=graphml` and `streamre graph export` give."""

from __future__ import annotations

import json
from io import BytesIO

import networkx as nx


def graphml(graph_json: dict) -> str:
    """Node-link JSON (`to_json`) as GraphML; lists become JSON strings (GraphML has scalars)."""
    flat = nx.MultiDiGraph()
    for node in graph_json["nodes"]:
        flat.add_node(node["id"], **_scalars({k: v for k, v in node.items() if k != "id"}))
    for edge in graph_json["edges"]:
        attrs = {k: v for k, v in edge.items() if k not in ("source", "target")}
        flat.add_edge(edge["source"], edge["target"], key=edge["id"], **_scalars(attrs))
    buffer = BytesIO()
    nx.write_graphml(flat, buffer)
    return buffer.getvalue().decode()


def _scalars(attrs: dict) -> dict:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in attrs.items()}
