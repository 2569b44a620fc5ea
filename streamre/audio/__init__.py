"""Audio in: PCM decoding, streaming resampling to 16 kHz, and voice activity segmentation."""

from streamre.audio.pcm import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioInput,
    PcmDecoder,
    StreamResampler,
    read_audio,
)
from streamre.audio.vad import Dropped, Segment, SpeechEnd, SpeechStart, VadConfig, VadSegmenter

__all__ = [
    "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "AudioInput", "PcmDecoder", "StreamResampler",
    "read_audio", "Dropped", "Segment", "SpeechEnd", "SpeechStart", "VadConfig", "VadSegmenter",
]
