"""How a segment is heard: the window it is padded to, how many tokens it may be answered with,
and the thresholds of the guards. One frozen object, handed to every backend.

Whisper was trained on 30 s windows of log-mel frames. Cut to an utterance's own length it
loops; zero-padded to 10 s it keeps its accuracy at a third of the encoder's cost (measured in
the hearing issue and in `docs/evaluation.md`), so a segment is padded to the smallest window
of `windows_s` that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamre import SAMPLE_RATE
from streamre.whisper.decoding import token_budget
from streamre.whisper.features import WHISPER_WINDOW_S


VOCABULARY_PROMPTS = ("spotted", "all", "none")
EAR_PROMPTS = ("candidates", "spotted", "none")
EAR_RUNS = ("all", "best")


@dataclass(frozen=True)
class HearingOptions:
    """Args:
        windows_s: the window sizes a segment may be padded to, in seconds, ascending; the
            last one is Whisper's 30 s. A segment longer than the largest is heard in parts.
        max_new_tokens: the most tokens any segment may be answered with.
        no_speech_threshold: a segment whose no-speech probability is above this and whose
            average log-probability is below `logprob_threshold` is silence (Whisper's rule).
        logprob_threshold: see `no_speech_threshold`.
        no_speech_sure: above this no-speech probability a segment is silence however sure the
            model is of its words (on digital silence tiny.en writes "you" at 0.99).
        compression_ratio_threshold: a transcript that gzip compresses more than this is a
            loop (Whisper's rule); so is one that ends in a repeated block, or that reaches its
            token cap.
        vocabulary_prompt: which of a segment's vocabulary phrases Whisper is prompted with,
            in a second pass: `spotted` (those close to words of the first transcript), `all`
            (as many as fit), or `none` (no second pass).
        spot_threshold: how close (rapidfuzz ratio, 0-100) heard words must be to a phrase
            for it to be spotted.
        prompt_tokens: the most tokens of phrases in a prompt.
        snap_threshold: heard words at least this close to a phrase are written as the phrase
            (0: never).
        ear_margin: a heard run close to a phrase is written as the phrase only where Whisper
            scores the sentence with the phrase above the sentence as heard plus this margin
            (summed log-probabilities, on the same audio). Negative: a name Whisper doubts is
            still written, one it plainly refuses is not ("Kenya you share your screen" scores
            15 below "Can you"); -inf writes every close phrase without asking. Chosen on dev
            (`docs/evaluation.md`).
        ear_prompt: what both sentences are scored after: `candidates` (the phrases that
            could be written, as previous text: Whisper told which names may be said),
            `spotted` (the second pass's previous text), or `none`.
        ear_runs: which heard runs the ear is asked about: `all` close enough to a phrase,
            each with its closest phrase (Whisper decides where a phrase goes), or `best`: each
            phrase's closest run by spelling, the closest phrase where runs overlap (the ear
            then only says yes or no).
        far_threshold: the runs spelling alone would not write are asked about too: any run
            of heard words at least this close to a phrase ("tune" for "Pune", "grid Solberg"
            for "Ingrid Solberg"), each phrase's closest, where its closest run written as a
            name is not close enough. Such a run is written as its phrase only where the
            sentence with it scores more than `far_margin` above the sentence as heard:
            Whisper must prefer it. 0: none.
        far_margin: see `far_threshold`.
        prompted_beam: the beam size of the second pass (1: greedy, as the first pass is).
            With names in its prompt, greedy decoding often writes them where plain words
            were said; the beam finds the sentence (measured in `docs/evaluation.md`).
    """

    windows_s: tuple[int, ...] = (10, 20, 30)
    max_new_tokens: int = 192
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    no_speech_sure: float = 0.95
    compression_ratio_threshold: float = 2.4
    vocabulary_prompt: str = "spotted"
    spot_threshold: float = 70.0
    prompt_tokens: int = 120
    snap_threshold: float = 85.0
    far_threshold: float = 85.0
    far_margin: float = 0.0
    ear_margin: float = -10.0
    ear_prompt: str = "candidates"
    ear_runs: str = "best"
    prompted_beam: int = 5

    def __post_init__(self) -> None:
        if not self.windows_s or list(self.windows_s) != sorted(set(self.windows_s)):
            raise ValueError(f"windows_s must be ascending window sizes, got {self.windows_s}")
        if self.windows_s[0] < 1 or self.windows_s[-1] > WHISPER_WINDOW_S:
            raise ValueError(f"windows must lie within 1..{WHISPER_WINDOW_S} s, "
                             f"got {self.windows_s}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.prompted_beam < 1:
            raise ValueError(f"prompted_beam must be at least 1, got {self.prompted_beam}")
        if self.ear_runs not in EAR_RUNS:
            raise ValueError(f"ear_runs must be one of {', '.join(EAR_RUNS)}, "
                             f"not {self.ear_runs!r}")
        if self.ear_prompt not in EAR_PROMPTS:
            raise ValueError(f"ear_prompt must be one of {', '.join(EAR_PROMPTS)}, "
                             f"not {self.ear_prompt!r}")
        if self.vocabulary_prompt not in VOCABULARY_PROMPTS:
            raise ValueError(f"vocabulary_prompt must be one of {', '.join(VOCABULARY_PROMPTS)}, "
                             f"not {self.vocabulary_prompt!r}")

    @property
    def longest_samples(self) -> int:
        return self.windows_s[-1] * SAMPLE_RATE

    def window_for(self, samples: int) -> int:
        """The smallest window (seconds) that holds a segment of `samples` samples."""
        return next((w for w in self.windows_s if samples <= w * SAMPLE_RATE), self.windows_s[-1])

    def token_budget(self, samples: int) -> int:
        """The most tokens a segment of `samples` samples may be answered with."""
        return token_budget(samples / SAMPLE_RATE, self.max_new_tokens)
