"""A speech model that reads text too (IMAGE, `modalities: ["speech", "text"]`) behind the
text extractor's seam: written sentences in, triplets out.

The text is embedded by the model's text path and also forced as the transcript, with
`<facts>` after it, so only the facts are decoded. Sentences whose prompts have the same
length share a model call.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from itertools import groupby
from typing import Sequence

import torch

from streamre.hearing.names import capitalised_names
from streamre.model.extractor import ModelExtractor
from streamre.model.linearize import FACTS
from streamre.triplets import Triplet

FACT_TOKENS = 96  # decoder positions kept for the facts; longer texts are cut to fit


class ModelTextExtractor:
    def __init__(self, speech: ModelExtractor) -> None:
        if not speech.model.takes_text:
            raise ValueError(f"model {speech.name} reads speech only (it was not trained to "
                             "read text: streamre train --text-batches)")
        self.speech = speech
        self.name, self.device = speech.name, speech.device

    @classmethod
    def load(cls, source: str, device: str = "auto", dtype: str = "auto"
             ) -> "ModelTextExtractor":
        return cls(ModelExtractor.load(source, device, dtype=dtype))

    def warmup(self) -> None:
        self.extract(["David Chen works for the World Bank."])

    def prompt_of(self, text: str) -> tuple[list[int], list[int]]:
        """The text's tokens (as the decoder writes a transcript: after a space) and the
        decoder's forced prompt: the model's prompt, those tokens, `<facts>`."""
        model, tokenizer = self.speech.model, self.speech.tokenizer
        prompt = list(model.config.decoder_prompt)
        room = model.decoder.max_target_positions - len(prompt) - 1 - FACT_TOKENS
        ids = tokenizer(" " + " ".join(text.split()), add_special_tokens=False).input_ids[:room]
        return ids, prompt + ids + [tokenizer.convert_tokens_to_ids(FACTS)]

    def names(self, texts: Sequence[str]) -> list[list[str]]:
        """The speech model has no entity tagger: names as capitalised words."""
        return [capitalised_names(t) for t in texts]

    @torch.inference_mode()
    def extract(self, texts: Sequence[str]) -> list[list[Triplet]]:
        """The triplets of each text, in the order the model wrote them."""
        found: list[list[Triplet]] = [[] for _ in texts]
        prompts = [self.prompt_of(t) for t in texts]
        order = sorted((i for i, (ids, _) in enumerate(prompts) if ids),
                       key=lambda i: len(prompts[i][0]))
        facts = self.speech.tokenizer.convert_tokens_to_ids(FACTS)
        for _, same in groupby(order, key=lambda i: len(prompts[i][0])):
            rows = list(same)
            ids = torch.tensor([prompts[i][0] for i in rows], device=self.device)
            prompt = torch.tensor([prompts[i][1] for i in rows], device=self.device)
            tokens, logprobs = self.speech.model.generate_from_text(
                ids, torch.ones_like(ids, dtype=torch.bool), prompt,
                self.speech.max_new_tokens)
            for i, row, lp in zip(rows, tokens, logprobs, strict=True):
                found[i] = self.speech.read([facts] + row, [0.0] + lp).triplets
        return found
