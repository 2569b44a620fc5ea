"""Whisper's tokens as hearing and the aligned model both use them: the special tokens, the
decoder prompt and the template that wraps text in it. The aligned model's markers are added in
`streamre.model.tokenizer`, never here."""

from __future__ import annotations

ENDOFTEXT, START, NOTIMESTAMPS = "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"
ENGLISH, TRANSCRIBE = "<|en|>", "<|transcribe|>"
MULTILINGUAL_VOCAB = 51865  # Whisper's multilingual token table; English-only ones have 51864


def is_multilingual(vocab_size: int) -> bool:
    """Whether a Whisper with this many token rows is multilingual (its prompt names English)."""
    return vocab_size >= MULTILINGUAL_VOCAB


def whisper_prompt(tokenizer_object, multilingual: bool) -> list[str]:
    """The decoder prompt: start of transcript, English transcription for a multilingual
    model, no timestamps."""
    prompt = [START] + ([ENGLISH, TRANSCRIBE] if multilingual else []) + [NOTIMESTAMPS]
    missing = [t for t in prompt if tokenizer_object.token_to_id(t) is None]
    if missing:
        raise ValueError(f"the tokenizer lacks Whisper's {', '.join(missing)}")
    return prompt


def prompted_tokenizer(tokenizer_object, prompt: list[str]):
    """A `PreTrainedTokenizerFast` over a `tokenizers.Tokenizer` whose template is
    `PROMPT $A <|endoftext|>`: what Whisper's decoder reads and writes."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    specials = prompt + [ENDOFTEXT]
    tokenizer_object.post_processor = processors.TemplateProcessing(
        single=" ".join(prompt) + " $A " + ENDOFTEXT,
        special_tokens=[(t, tokenizer_object.token_to_id(t)) for t in dict.fromkeys(specials)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, bos_token=ENDOFTEXT,
                                   eos_token=ENDOFTEXT, pad_token=ENDOFTEXT, unk_token=ENDOFTEXT)
