"""How a room's graph takes facts in (`GraphSettings`): one place for the server's, the
journal's and the tests' settings."""

from __future__ import annotations

from dataclasses import dataclass

from streamre.settings import setting


@dataclass(frozen=True)
class GraphSettings:
    """How a room's graph takes facts in: the dedup window, the confidence shown, the caps,
    and when two names are one entity."""
    dedup_window_s: float = setting(
        60.0, "sightings of a fact this close in meeting time are one mention")
    min_confidence: float = setting(0.0, "confidence an edge needs before it is shown")
    max_nodes: int = setting(20000, "most nodes per room; then new ones are refused")
    max_edges: int = setting(50000, "most edges per room; then new ones are refused")
    fuzzy_threshold: float = setting(
        92.0, "rapidfuzz ratio (0-100) at which two names are one entity")

    def __post_init__(self) -> None:
        if self.dedup_window_s < 0:
            raise ValueError("dedup_window_s must not be negative")
        if not 0 <= self.min_confidence <= 1 or not 0 <= self.fuzzy_threshold <= 100:
            raise ValueError("min_confidence must be 0..1 and fuzzy_threshold 0..100")
        if self.max_nodes < 1 or self.max_edges < 1:
            raise ValueError("max_nodes and max_edges must be at least 1")
