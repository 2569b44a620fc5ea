"""The floor hearing and the aligned model share: where a torch model runs (`devices`), Whisper's
log-mel features (`features`), its tokens and decoder prompt (`tokenizer`), the decoding guards
(`decoding`) and the import of pretrained Whisper weights (`weights`, `sources`, `ct2_format`).
Nothing here knows the aligned model or its markers."""
