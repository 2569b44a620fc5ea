"""Training data: JSON-lines manifests (PROTOCOL.md) to batches for `mcam_objective`.

One line per utterance: `{"audio": "path.wav", "text": "...", "triplets": [[h, r, t], ...]}`;
`audio` is relative to the manifest's folder or absolute. The decoder learns to write the
transcript and then the triplets (`target_text`); the MCAM text path reads the transcript, and
the tokens of its entity mentions are the ones swapped for speech in the mixed path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from streamre.audio import read_audio
from streamre.model.linearize import FACTS, target_text
from streamre.model.orders import target_in_order
from streamre.model.relation_heads import RelationPrompt
from streamre.training.losses import IGNORE
from streamre.model.mcam import MCAMModel
from streamre.training.objective import Batch
from streamre.model.tokenizer import prompt_ids


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and line."""


@dataclass
class Example:
    audio: Path
    text: str
    triplets: list[tuple[str, str, str]]
    speaker: str | None = None
    duration_s: float | None = None  # from the manifest when it says; else read from the file
    entities: list[tuple[int, int]] | None = None  # character spans, when the manifest has them
    _samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        if self.duration_s is None:
            import soundfile

            info = soundfile.info(str(self.audio))
            self.duration_s = info.frames / info.samplerate
        return self.duration_s

    @property
    def samples(self) -> np.ndarray:
        if self._samples is None:
            self._samples = read_audio(self.audio)
        return self._samples

    def target(self, order: str | None = None) -> str:
        """The decoder's target: REBEL's, or the facts in an element `order` (RPG-MoGe)."""
        # Triplets ordered by where their head is said (REBEL order); unknown heads last.
        def head_position(t):
            at = self.text.casefold().find(t[0].casefold())
            return at if at >= 0 else len(self.text)
        triplets = sorted(self.triplets, key=head_position)
        return target_in_order(self.text, triplets, order) if order else \
            target_text(self.text, triplets)

    def entity_spans(self) -> list[tuple[int, int]]:
        """Character spans of the entities: the manifest's, else every head and tail found."""
        if self.entities is not None:
            return list(self.entities)
        spans, folded = [], self.text.casefold()
        for name in {part for h, _, t in self.triplets for part in (h, t)}:
            at = folded.find(name.casefold())
            if at >= 0:
                spans.append((at, at + len(name)))
        return spans


def read_manifest(path: str | Path) -> list[Example]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except ValueError:
            raise ManifestError(f"{where}: not JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("audio"), str) \
                or not isinstance(item.get("text"), str):
            raise ManifestError(f"{where}: needs string fields 'audio' and 'text'")
        triplets = item.get("triplets", [])
        if not isinstance(triplets, list) or not all(
                isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t)
                for t in triplets):
            raise ManifestError(f"{where}: 'triplets' must be a list of [head, relation, tail]")
        audio = Path(item["audio"])
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            raise ManifestError(f"{where}: audio file not found: {audio}")
        duration = item.get("duration_s")
        examples.append(Example(audio, item["text"], [tuple(t) for t in triplets],
                                item.get("speaker"),
                                float(duration) if isinstance(duration, (int, float)) else None,
                                _entity_spans(item.get("entities"), item["text"], where)))
    if not examples:
        raise ManifestError(f"{path}: no utterances")
    return examples


def _entity_spans(entities, text: str, where: str) -> list[tuple[int, int]] | None:
    if entities is None:
        return None
    try:
        spans = [(int(e["start"]), int(e["end"])) for e in entities]
    except (TypeError, KeyError, ValueError):
        raise ManifestError(f"{where}: 'entities' must be a list of {{start, end, ...}}") from None
    if any(not 0 <= start < end <= len(text) for start, end in spans):
        raise ManifestError(f"{where}: an entity span lies outside the text")
    return spans


class Collator:
    """Examples to a padded `Batch`: waveforms, the decoder's input and labels (the prompt is
    given, not learnt), and the transcript's tokens with their entity mask."""

    def __init__(self, tokenizer, relation_prompt: RelationPrompt | None = None,
                 max_target_tokens: int = 448) -> None:
        self.tokenizer = tokenizer
        self.relation_prompt = relation_prompt  # for a model with relation heads
        self.prompt = len(prompt_ids(tokenizer))
        self.facts = tokenizer.convert_tokens_to_ids(FACTS)
        self.max_target_tokens = max_target_tokens

    def __call__(self, examples: list[Example], orders: list[str] | None = None) -> Batch:
        """`orders`: each example's element order (a model trained in orders), or None."""
        tok = self.tokenizer
        values, audio_mask = MCAMModel.prepare_waveforms([e.samples for e in examples])
        orders = orders or [None] * len(examples)
        targets = tok([e.target(o) for e, o in zip(examples, orders, strict=True)],
                      return_tensors="pt", padding=True,
                      truncation=True, max_length=self.max_target_tokens + 1)
        decoder_ids = targets.input_ids[:, :-1]
        labels = targets.input_ids[:, 1:].clone()
        labels[targets.attention_mask[:, 1:] == 0] = IGNORE
        labels[:, : self.prompt - 1] = IGNORE
        # The transcript's words: labelled tokens before the first <facts>.
        facts = (labels == self.facts).long().cumsum(-1) > 0
        transcript = (labels != IGNORE) & ~facts
        # The text path reads the transcript as the decoder writes it: after a space.
        text = tok([" " + e.text for e in examples], return_tensors="pt", padding=True,
                   add_special_tokens=False, return_offsets_mapping=True)
        text_mask = text.attention_mask.bool()
        entity = torch.zeros_like(text_mask)
        for b, example in enumerate(examples):
            for start, end in example.entity_spans():
                for i, (a, z) in enumerate(text.offset_mapping[b].tolist()):
                    if text_mask[b, i] and a < end + 1 and z > start + 1:
                        entity[b, i] = True
        heard = self.relation_prompt.targets([e.triplets for e in examples]) \
            if self.relation_prompt else None
        return Batch(values, audio_mask, text.input_ids, text_mask, entity, decoder_ids, labels,
                     transcript, heard, self.relation_prompt)
