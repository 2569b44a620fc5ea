"""The guards on what Whisper wrote, which need no model: silence, loops, the cut that ends a
loop, and a prompt read out. Whisper's own rules (compression ratio, no-speech probability with
average log-probability) beside the repeated-block check the decoder already uses."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from streamre.hearing.options import HearingOptions
from streamre.whisper.decoding import repeating_tail


@dataclass(frozen=True)
class Decoded:
    """One segment as a backend decoded it, before the guards.

    tokens: the tokens written after the prompt, without the end token.
    logprobs: the log-probability of each of them.
    no_speech_prob: the probability of Whisper's no-speech token at the start of the
        transcript (None when the model has none).
    ended: the model wrote its end token (it was not stopped by the token cap).
    """

    tokens: list[int]
    logprobs: list[float]
    no_speech_prob: float | None
    ended: bool

    @property
    def avg_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


def compression_ratio(text: str) -> float:
    """How much zlib shrinks the text: about 1.5 for speech, well above 2.4 for a loop."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def said_twice(tokens: list[int], min_block: int = 4) -> bool:
    """The tokens end in a block of `min_block` or more said twice in a row: at short windows
    Whisper can write a whole sentence again, which the 3-copies rule of `repeating_tail`
    lets through (people seldom repeat four tokens back to back)."""
    n = len(tokens)
    return any(tokens[n - 2 * p:n - p] == tokens[n - p:] for p in range(min_block, n // 2 + 1))


def is_silence(decoded: Decoded, options: HearingOptions) -> bool:
    """Whisper's rule: sure there is no speech, and not sure of what it wrote; or all but
    certain there is no speech."""
    p = decoded.no_speech_prob
    return p is not None and (p > options.no_speech_sure or (
        p > options.no_speech_threshold and decoded.avg_logprob < options.logprob_threshold))


def loops(decoded: Decoded, text: str, options: HearingOptions) -> bool:
    """The decoder went round in circles: it hit its token cap, it ends in a block said again
    and again (or a long block twice), or its text compresses like repetition does."""
    return (not decoded.ended or repeating_tail(decoded.tokens) > 0 or said_twice(decoded.tokens)
            or compression_ratio(text) > options.compression_ratio_threshold)


def without_repeats(decoded: Decoded) -> Decoded:
    """The decoded tokens with repeated tails cut until none is left (`repeating_tail`)."""
    keep = len(decoded.tokens)
    while cut := repeating_tail(decoded.tokens[:keep]):
        keep -= cut
    if keep == len(decoded.tokens):
        return decoded
    return Decoded(decoded.tokens[:keep], decoded.logprobs[:keep], decoded.no_speech_prob,
                   decoded.ended)


def reads_prompt_out(text: str, prompt: str) -> bool:
    """The model read its prompt out: three of the prompt's phrases one right after the other,
    in any order, or nothing but two or more of them. Two alone are not enough: people name a
    city and its country back to back ("flew in from Pune, India"): on dev that rule refused
    13 second transcripts, 11 of them good (docs/evaluation.md). `prompt`: the previous text,
    its phrases between commas."""
    phrases = {tuple(_words(p)) for p in prompt.split(",")} - {()}
    said = _words(text)
    # lengths[i]: the lengths of the phrases said from word i on
    lengths = [[len(p) for p in phrases if tuple(said[i:i + len(p)]) == p]
               for i in range(len(said))]
    # chain[i]: the most phrases said back to back from word i on
    chain = [0] * (len(said) + 1)
    for i in range(len(said) - 1, -1, -1):
        chain[i] = max((1 + chain[i + n] for n in lengths[i]), default=0)
    return max(chain) >= 3 or (chain[0] >= 2 and _covers(lengths))


def _covers(lengths: list[list[int]]) -> bool:
    """Whether phrases follow one another from the first word to the last, given the lengths
    of the phrases said from each word."""
    ends = {0}
    for i, here in enumerate(lengths):
        if i in ends:
            ends |= {i + n for n in here}
    return len(lengths) in ends


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:['’-]\w+)*", text.casefold())
