"""Hearing: an unmodified pretrained Whisper turns each segment into text, with the signals its
guards read. `load_hearing` picks the model and the engine; `Transcriber` hears, behind the
`Hearing` seam (`streamre.inference.seam`). Built on `streamre.whisper` alone."""

from streamre.hearing.load import DEFAULT_ASR, load_hearing
from streamre.hearing.options import HearingOptions
from streamre.hearing.transcriber import GUARDS, Heard, Transcriber

__all__ = ["DEFAULT_ASR", "GUARDS", "Heard", "HearingOptions", "Transcriber",
           "load_hearing"]
