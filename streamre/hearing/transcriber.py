"""Hearing: segments in, what Whisper heard out, whatever engine runs it.

A `Transcriber` pads each segment to its window (`HearingOptions.window_for`), decodes the
segments of one window together on a `WhisperBackend`, and applies the guards: the token cap by
duration, a looping segment decoded again at Whisper's 30 s window (its repeats cut if it still
loops), and nothing said for silence. Each guard that acts is reported to `on_guard`, which the
server counts in `/metrics`.

A segment may come with a vocabulary (`streamre.hearing.vocabulary`): the names its room expects.
The first transcript is made without it; phrases it suggests (or all, by `vocabulary_prompt`)
are then given to Whisper as previous text and the segment is decoded again. Prompts take over
output (a name list copied, loops, names said on noise), so the second transcript is kept only
if it passes the guards and stays about as long as the first; otherwise the first stands
(`prompt_rejected`). Silence is never prompted. Then heard words close to a phrase are written
as the phrase, unless Whisper's own ear refuses: the sentence with the phrase, scored on the
same audio, must not fall more than a margin below the sentence as heard
(`HearingOptions.ear_margin`, `streamre.hearing.ear`), so "Can you share your screen" never
becomes "Kenya you share your screen" (`snap_refused`). Words that a person once corrected into
a name (a `LearntName` of the vocabulary, `streamre.hearing.learnt`) are asked about the same
way, wherever they are heard again. The encoder runs once a segment for all
of it. Calls that wait on nothing of each other (a window's share of the encoder and of a pass,
each prompt's pass, each segment's ear) go through the engine's `each`, which runs them side
by side where it has workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Callable, Sequence

import numpy as np

from streamre import SAMPLE_RATE
from streamre.hearing.backend import EncodedParts, WhisperBackend, worker_shares
from streamre.hearing.ear import MAX_EAR_CANDIDATES, preferred
from streamre.hearing.features import window_log_mel
from streamre.hearing.guards import Decoded, is_silence, loops, reads_prompt_out, without_repeats
from streamre.hearing.options import WHISPER_WINDOW_S, HearingOptions
from streamre.hearing.learnt import learnt_runs
from streamre.hearing.vocabulary import (Match, apart, candidates, close_runs, closest_per_run,
                                         spotted, written_as)
from streamre.whisper.features import equal_parts

GUARDS = ("capped", "loop_retried", "repeats_cut", "silence", "prompted", "prompt_rejected",
          "snapped", "snap_refused")


@dataclass(frozen=True)
class Heard:
    """What Whisper heard in one segment.

    text: the transcript ("" for silence).
    avg_logprob: the mean log-probability of its tokens.
    no_speech_prob: Whisper's probability that the segment holds no speech (None: the model
        has no such token).
    window_s: the window it was finally decoded in.
    guards: the guards that acted on it (names from `GUARDS`).
    """

    text: str
    avg_logprob: float
    no_speech_prob: float | None
    window_s: int
    guards: tuple[str, ...] = ()


class Transcriber:
    """Hearing (`streamre.inference.seam.Hearing`) over a `WhisperBackend`.

    Args:
        backend: the engine.
        options: windows, token cap, guard thresholds.
        name: what `/healthz` and the logs call it.
        device: where it runs.
        on_guard: called with a guard's name each time it acts.
    """

    def __init__(self, backend: WhisperBackend, options: HearingOptions, name: str,
                 device: str, on_guard: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.options = options
        self.name = name
        self.device = device
        self.on_guard = on_guard

    def warmup(self) -> None:
        """One decode per window size on a noise burst, so no real segment pays for a first
        call of its shape."""
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(SAMPLE_RATE) * 1000).astype(np.int16)
        backend = self.backend

        def warm(window: int) -> None:
            states = backend.encode(window_log_mel([noise], window, backend.n_mels))
            backend.decode(states, 4)
            backend.score(states, ["Hello."])
        for window in self.options.windows_s:
            warm(window)
            backend.each(warm, [window] * backend.workers)  # the workers' replicas too

    def window_of(self, waveform: np.ndarray) -> int:
        """The window a segment is heard in: what the engine groups batches by."""
        return self.options.window_for(min(len(waveform), self.options.longest_samples))

    def transcribe(self, waveforms: Sequence[np.ndarray],
                   vocabularies: Sequence[Sequence[str]] | None = None) -> list[Heard]:
        """Each waveform's transcript; `vocabularies`: each one's phrases, if any."""
        # A segment longer than the largest window is heard in equal parts, their texts joined.
        parts, owners = equal_parts(waveforms, self.options.longest_samples)
        encoded = EncodedParts(self.backend, parts)
        heard = self._hear_parts(encoded, list(range(len(parts))))
        if vocabularies is not None:
            heard = self._with_vocabulary(encoded, heard, [vocabularies[o] for o in owners])
        joined: list[list[Heard]] = [[] for _ in waveforms]
        for owner, h in zip(owners, heard, strict=True):
            joined[owner].append(h)
        return [_join(h) for h in joined]

    def _hear_parts(self, encoded: EncodedParts, parts: list[int],
                    previous: list[tuple[int, ...]] | None = None,
                    beam_size: int = 1) -> list[Heard]:
        """These parts heard, each after its previous text, in their order."""
        previous = previous or [()] * len(parts)
        windows = [self.window_of(encoded.parts[i]) for i in parts]
        decoded = self._decode(encoded, parts, windows, previous, beam_size)
        looping = [k for k, d in enumerate(decoded)
                   if windows[k] < WHISPER_WINDOW_S and loops(d, self.backend.text(d.tokens),
                                                              self.options)]
        if looping:  # decoded again at the window Whisper was trained on
            retried = self._decode(encoded, [parts[k] for k in looping],
                                   [WHISPER_WINDOW_S] * len(looping),
                                   [previous[k] for k in looping], beam_size)
            for k, d in zip(looping, retried, strict=True):
                decoded[k], windows[k] = d, WHISPER_WINDOW_S
        return [self._guarded(d, w, retried=k in looping)
                for k, (d, w) in enumerate(zip(decoded, windows, strict=True))]

    def _with_vocabulary(self, encoded: EncodedParts, first: list[Heard],
                         vocabularies: list[Sequence[str]]) -> list[Heard]:
        """The parts heard again with their vocabulary as previous text, where it has
        phrases to give (a second transcript that fails the guards leaves the first); then
        heard words close to a phrase written as the phrase, where Whisper's ear agrees."""
        options = self.options
        previous: dict[int, tuple[int, ...]] = {}
        for i, (heard, vocabulary) in enumerate(zip(first, vocabularies, strict=True)):
            if not heard.text or not vocabulary or options.vocabulary_prompt == "none":
                continue
            phrases = spotted(heard.text, vocabulary, options.spot_threshold) \
                if options.vocabulary_prompt == "spotted" else vocabulary
            said = heard.text.casefold()
            if all(p.casefold() in said for p in phrases):
                continue  # every name it suggests was heard as written: nothing to mend
            ids = self.backend.vocabulary.previous_text(phrases, options.prompt_tokens)
            if ids:
                previous[i] = tuple(ids)
        rows = list(previous)
        heard = list(first)
        if rows:
            again = self._hear_parts(encoded, rows, [previous[i] for i in rows],
                                     options.prompted_beam)
            for i, second in zip(rows, again, strict=True):
                heard[i] = self._prompted(first[i], second, self.backend.text(list(previous[i])))
        if options.snap_threshold > 0:
            asked = [i for i, (h, v) in enumerate(zip(heard, vocabularies, strict=True))
                     if h.text and v]
            snapped = self.backend.each(
                lambda i: self._snapped(encoded, i, heard[i], vocabularies[i],
                                        previous.get(i, ())), asked)
            for i, (h, refused) in zip(asked, snapped, strict=True):
                for _ in range(refused):
                    self._count("snap_refused")
                if h is not heard[i]:
                    self._count("snapped")
                heard[i] = h
        return heard

    def _snapped(self, encoded: EncodedParts, part: int, heard: Heard, vocabulary: Sequence[str],
                 previous: tuple[int, ...]) -> tuple[Heard, int]:
        """Heard words close to a phrase written as the phrase, and how many phrases the ear
        refused. With the ear (`ear_margin` above -inf), Whisper decides where each phrase
        goes: every close run (or each phrase's closest, by `ear_runs`) is scored on the same
        audio, after the previous text `ear_prompt` names, and a phrase is written at its best
        run if that sentence scores more than `ear_margin` above the sentence as heard;
        without it, every closest run. Runs on a worker: it counts nothing itself."""
        options = self.options
        text = heard.text
        asks = options.ear_margin > float("-inf")
        if asks and options.ear_runs == "all":
            found = [m for m in closest_per_run(candidates(text, vocabulary,
                                                           options.snap_threshold))
                     if text[m.start:m.end] != m.phrase]
        else:
            found = close_runs(text, vocabulary, options.snap_threshold)
        learnt = learnt_runs(text, vocabulary)  # heard as a name was before it was fixed
        found = [*found, *learnt] if asks else apart([*found, *learnt])
        far: list[Match] = []
        refused = 0
        if asks and options.far_threshold > 0:  # what spelling alone would not write
            near = {m.phrase for m in found}
            far = [m for m in close_runs(text, vocabulary, options.far_threshold, named_ends=0)
                   if m.phrase not in near]
        if asks and (found or far):
            runs = [*sorted(found, key=lambda m: -m.score),
                    *sorted(far, key=lambda m: -m.score)][:MAX_EAR_CANDIDATES]
            margins = [options.ear_margin if k < len(found) else options.far_margin
                       for k in range(len(runs))]
            found, refused = preferred(
                self.backend, encoded.rows([part], heard.window_s), text, runs, previous,
                options, margins)
        if not found:
            return heard, refused
        return Heard(written_as(text, found), heard.avg_logprob, heard.no_speech_prob,
                     heard.window_s, (*heard.guards, "snapped")), refused

    def _prompted(self, first: Heard, second: Heard, prompt: str) -> Heard:
        """The second transcript, or the first where the prompt took over: silence, a loop
        even at 30 s, the prompt copied, or many more words than the first heard."""
        words, before = len(second.text.split()), len(first.text.split())
        took_over = (not second.text or "repeats_cut" in second.guards
                     or reads_prompt_out(second.text, prompt) or words > 1.5 * before + 2)
        guard = "prompt_rejected" if took_over else "prompted"
        self._count(guard)
        kept = first if took_over else second
        return Heard(kept.text, kept.avg_logprob, kept.no_speech_prob, kept.window_s,
                     tuple(dict.fromkeys((*first.guards, *second.guards, guard))))

    def _count(self, guard: str) -> None:
        if self.on_guard is not None:
            self.on_guard(guard)

    def _decode(self, encoded: EncodedParts, parts: list[int], windows: list[int],
                previous: list[tuple[int, ...]], beam_size: int = 1) -> list[Decoded]:
        """Each part decoded in its window after its previous text; the parts of one window
        and one previous text share a call, or a call for each of the engine's workers, side
        by side. A part's tokens past its own budget are cut (it then did not end)."""
        found: list[Decoded | None] = [None] * len(parts)

        def call(k: int) -> tuple:
            return windows[k], previous[k]
        for window in set(windows):  # encoded here, together, before the calls share them
            encoded.rows([p for p, w in zip(parts, windows, strict=True) if w == window], window)
        calls = []  # the parts of one call, split in the engine workers' shares
        for _, same in groupby(sorted(range(len(parts)), key=call), key=call):
            same = list(same)
            calls += worker_shares(same, self.backend.workers)

        def decode(same: list[int]) -> list[Decoded]:
            budgets = [self.options.token_budget(len(encoded.parts[parts[k]])) for k in same]
            states = encoded.rows([parts[k] for k in same], windows[same[0]])
            return [d if len(d.tokens) <= budget else
                    Decoded(d.tokens[:budget], d.logprobs[:budget], d.no_speech_prob, False)
                    for budget, d in zip(budgets, self.backend.decode(
                        states, max(budgets), previous[same[0]], beam_size), strict=True)]
        for same, decoded in zip(calls, self.backend.each(decode, calls), strict=True):
            for k, d in zip(same, decoded, strict=True):
                found[k] = d
        return found

    def _guarded(self, decoded: Decoded, window: int, retried: bool) -> Heard:
        guards = ["loop_retried"] if retried else []
        if not decoded.ended:
            guards.append("capped")
        if is_silence(decoded, self.options):
            guards.append("silence")
            text = ""
        else:
            cut = without_repeats(decoded)
            if len(cut.tokens) < len(decoded.tokens):
                guards.append("repeats_cut")
                decoded = cut
            text = self.backend.text(decoded.tokens).strip()
        for guard in guards:
            self._count(guard)
        return Heard(text, decoded.avg_logprob, decoded.no_speech_prob, window, tuple(guards))


def _join(parts: list[Heard]) -> Heard:
    if len(parts) == 1:
        return parts[0]
    speech = [p.no_speech_prob for p in parts if p.no_speech_prob is not None]
    return Heard(" ".join(p.text for p in parts if p.text),
                 sum(p.avg_logprob for p in parts) / len(parts),
                 min(speech) if speech else None, max(p.window_s for p in parts),
                 tuple(dict.fromkeys(g for p in parts for g in p.guards)))
