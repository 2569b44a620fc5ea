"""What the batching engine answers: a segment's or sentence's transcript, facts and timing
(`InferenceResult`), and why a sentence cannot be read (`TextUnavailable`). Plain data."""

from __future__ import annotations

import time
from dataclasses import dataclass

from streamre.triplets import Triplet


@dataclass
class InferenceResult:
    text: str  # the segment's transcript
    triplets: list[Triplet]
    queue_ms: float  # from submit to the start of the model call
    infer_ms: float  # the model call (shared by the whole batch)
    batch_size: int
    names: tuple[str, ...] = ()  # a typed sentence's names, as its reader tagged them

    def fields(self, asked_at: float) -> dict:
        """A `triplets` message's facts and timing fields (`Failed.fields` when there are
        none); `asked_at` is when the item was ready (the segment closed, the sentence
        arrived), on the monotonic clock."""
        return {"triplets": [t.to_json() for t in self.triplets],
                "latency_ms": round((time.monotonic() - asked_at) * 1000, 1),
                "queue_ms": round(self.queue_ms, 1), "infer_ms": round(self.infer_ms, 1),
                "batch_size": self.batch_size}


class TextUnavailable(RuntimeError):
    """The server has no text extractor."""
