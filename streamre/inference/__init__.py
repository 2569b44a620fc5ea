"""From segments to triplets: the extractor seam and the batching engine around it."""

from streamre.inference.engine import InferenceEngine, InferenceResult
from streamre.inference.extractor import ModelExtractor, TripletExtractor, pick_device

__all__ = ["InferenceEngine", "InferenceResult", "ModelExtractor", "TripletExtractor",
           "pick_device"]
