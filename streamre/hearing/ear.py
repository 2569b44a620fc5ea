"""Whisper's own ear has a say where a name goes: sentences that write a phrase at one run of
heard words each, scored on the segment's audio against the sentence as heard
(`WhisperBackend.score`), after the candidate names as previous text (told which names may be
said, as a person who read the invitation is). Told "Kenya" may be said, Whisper still scores
"Can you share your screen" 15 above "Kenya you share your screen". tiny.en is as sure of
much that it misheard ("Clara Moretti" over "Chiara Moretti"), so the margin chosen on dev
lets it refuse only what it plainly does not hear (`docs/evaluation.md`)."""

from __future__ import annotations

from typing import Sequence

from streamre.hearing.backend import WhisperBackend
from streamre.hearing.options import HearingOptions
from streamre.hearing.vocabulary import Match, written_as

MAX_EAR_CANDIDATES = 24  # runs scored for one segment at most, the closest first


def preferred(backend: WhisperBackend, states, text: str, runs: Sequence[Match],
              previous: Sequence[int], options: HearingOptions,
              margins: Sequence[float]) -> tuple[list[Match], int]:
    """The runs Whisper's ear lets be written as their phrase: each phrase at most once, at
    the run that gains most, where it gains more than its margin (summed log-probabilities;
    `margins`: one per run), runs apart; and how many of the runs' phrases were refused.
    states: the segment's, from `encode`;
    previous: the second pass's previous text (for `ear_prompt` "spotted"). Told the names
    already heard as written as well, the ear gained less on dev (docs/evaluation.md)."""
    phrases = list(dict.fromkeys(m.phrase for m in runs))
    if options.ear_prompt == "candidates":
        previous = backend.vocabulary.previous_text(phrases, options.prompt_tokens)
    elif options.ear_prompt == "none":
        previous = ()
    scores = backend.score(states, [text, *(written_as(text, [m]) for m in runs)], previous)
    gains = [s - scores[0] for s in scores[1:]]
    chosen: list[Match] = []
    taken: set[int] = set()
    for gain, margin, m in sorted(zip(gains, margins, runs, strict=True), key=lambda t: -t[0]):
        span = set(range(m.first, m.last + 1))
        if gain > margin and not span & taken \
                and m.phrase not in {c.phrase for c in chosen}:
            chosen.append(m)
            taken |= span
    return chosen, len(phrases) - len(chosen)
