"""Whisper's vocabulary as hearing needs it: the decoder prompt, the end and no-speech tokens,
and tokens back to text. One place, so both backends prompt and read alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typing import Sequence

from streamre.whisper.tokenizer import ENDOFTEXT, NOTIMESTAMPS, whisper_prompt

# English-only Whisper models call their no-speech token <|nocaptions|>.
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")
START_OF_PREVIOUS = "<|startofprev|>"
# Whisper gives previous text at most half its 448-token context; faster-whisper cuts to 223.
MAX_PREVIOUS_TOKENS = 223


@dataclass(frozen=True)
class WhisperVocabulary:
    """Args:
        tokenizer: a `tokenizers.Tokenizer` with Whisper's special tokens.
        prompt: the decoder prompt's ids (start of transcript, [English, transcribe,] no
            timestamps).
        end: the end-of-text id.
        no_speech: the no-speech token's id, or None.
        timestamp_begin: the first timestamp token's id (the one after no-timestamps).
        start_of_previous: the id that opens previous text (`<|startofprev|>`), or None.
    """

    tokenizer: object
    prompt: list[int]
    end: int
    no_speech: int | None
    timestamp_begin: int
    start_of_previous: int | None = None

    @classmethod
    def of(cls, tokenizer, multilingual: bool) -> "WhisperVocabulary":
        prompt = [tokenizer.token_to_id(t) for t in whisper_prompt(tokenizer, multilingual)]
        no_speech = next((tokenizer.token_to_id(t) for t in NO_SPEECH_TOKENS
                          if tokenizer.token_to_id(t) is not None), None)
        return cls(tokenizer, prompt, tokenizer.token_to_id(ENDOFTEXT), no_speech,
                   tokenizer.token_to_id(NOTIMESTAMPS) + 1,
                   tokenizer.token_to_id(START_OF_PREVIOUS))

    @classmethod
    def from_file(cls, path: Path, multilingual: bool) -> "WhisperVocabulary":
        from tokenizers import Tokenizer

        if not path.is_file():
            raise FileNotFoundError(f"{path}: Whisper's tokenizer.json is missing")
        return cls.of(Tokenizer.from_file(str(path)), multilingual)

    def text(self, tokens: list[int]) -> str:
        """The text of decoded tokens; special tokens (from the end token on) are dropped."""
        return self.tokenizer.decode([t for t in tokens if t < self.end])

    def tokens_of(self, text: str) -> list[int]:
        """The ids Whisper writes for a transcript: its words after a leading space."""
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids

    def prompt_after(self, previous: Sequence[int]) -> list[int]:
        """The decoder prompt, after previous text's ids if any (its last
        `MAX_PREVIOUS_TOKENS`, as Whisper keeps the latest context)."""
        if not previous:
            return list(self.prompt)
        if self.start_of_previous is None:
            raise ValueError("this Whisper's tokenizer has no <|startofprev|>")
        return [self.start_of_previous, *previous[-MAX_PREVIOUS_TOKENS:], *self.prompt]

    def previous_text(self, phrases: Sequence[str], budget: int) -> list[int]:
        """Phrases as previous text ("Anna Schmidt, Volvo, Gothenburg."), as many whole ones,
        in order, as fit in `budget` tokens."""
        ids: list[int] = []
        for phrase in phrases:
            more = self.tokenizer.encode((", " if ids else " ") + phrase,
                                         add_special_tokens=False).ids
            if len(ids) + len(more) + 1 > budget:
                break
            ids += more
        return ids + self.tokenizer.encode(".", add_special_tokens=False).ids if ids else []
