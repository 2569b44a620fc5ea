"""The training objective: three paths through the model, and the paper's weighted sum.

    L = CE(t) + CE(m) + CE(s) + KL(t→m) + KL(t→s) + α·CL + β·CTC     (α = 0.8, β = 0.2)

The KL terms count only in batches where the text path's CE is below the speech path's (the
paper's text side is a pretrained BART; ours starts untrained beside a pretrained Whisper).

t: the transcript through the text encoder; s: speech; m: the transcript with its entity tokens
replaced by their speech features (window attention). The LNA-ED baseline (`alignment: none`)
has the speech path's CE only; trained to read text too (IMAGE), each batch is given as speech,
text or both (`inputs_objective`). Every path decodes the same target: transcript, then triplets.
With relation heads (RPG-MoGe), their binary cross-entropy is added, and every path reads the
prompt of the relations they heard after `<facts>` (`streamre.model.relation_heads`).

Not the paper's: given the original Whisper as a `teacher`, `keep` times KL(teacher → speech
path) on the transcript's tokens keeps the decoder's hearing close to Whisper's while it
learns the facts (the training text is small and its voices synthetic; users are neither).

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from streamre.model.linearize import TARGET_MARKERS
from streamre.model.relation_heads import RelationPrompt, insert_after
from streamre.training.losses import (
    IGNORE, ctc_alignment, mix_entities, prompt_contrastive, token_kl, window_attention)

ALPHA = 0.8  # weight of the prompt contrastive loss
BETA = 0.2  # weight of the CTC alignment loss


@dataclass
class Batch:
    input_values: torch.Tensor  # (B, T_audio) normalised waveforms
    attention_mask: torch.Tensor  # (B, T_audio)
    text_ids: torch.Tensor  # (B, T) transcript tokens, the text encoder's input
    text_mask: torch.Tensor  # (B, T) bool
    entity_mask: torch.Tensor  # (B, T) bool: tokens whose features are swapped for speech
    decoder_ids: torch.Tensor  # (B, L) the decoder's input: prompt and target, shifted right
    labels: torch.Tensor  # (B, L) target tokens, -100 where not learnt (prompt, padding)
    transcript: torch.Tensor  # (B, L) bool: labels that are the transcript's words
    relations: torch.Tensor | None = None  # (B, R) multi-hot, for a model with relation heads
    prompt: RelationPrompt | None = None  # and the tokens of its relation prompt

    def to(self, device) -> "Batch":
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{name: value.to(device) if isinstance(value, torch.Tensor) else value
                        for name, value in parts.items()})

    def prompted(self, logits: torch.Tensor) -> "Batch":
        """The batch with the relation prompt the heads' `logits` choose put after `<facts>`
        in each row (given, not learnt)."""
        prompt = self.prompt
        ids, labels, transcript = insert_after(
            prompt.facts, prompt.chosen(logits.detach()), self.decoder_ids, self.labels,
            self.transcript, pad=prompt.pad, ignore=IGNORE)
        return replace(self, decoder_ids=ids, labels=labels, transcript=transcript)


def mcam_objective(model, batch: Batch, alpha: float = ALPHA, beta: float = BETA,
                   teacher=None, keep: float = 0.0) -> dict[str, torch.Tensor]:
    """Every loss term (detached, for logging) and `loss`, the weighted sum to minimise."""
    speech, speech_mask = model.speech_features(batch.input_values, batch.attention_mask)
    heard = {}
    if model.relation_heads is not None:  # RPG-MoGe: the prompt is what the heads heard
        logits = model.relation_heads(speech, speech_mask)
        heard["relations"] = nn.functional.binary_cross_entropy_with_logits(
            logits.float(), batch.relations.float())
        batch = batch.prompted(logits)
    if model.prompts is None:  # LNA-ED: the encoder output straight into the decoder
        out = model.decode(speech, speech_mask, batch.decoder_ids, batch.labels)
        terms = {"ce_speech": out.loss}
    else:
        terms, out = _aligned_terms(model, batch, speech, speech_mask)
    terms.update(heard)
    if teacher is not None and keep > 0:
        terms["keep_whisper"] = _whisper_kl(model, teacher, batch, out.logits,
                                            speech if model.adapter is None else None,
                                            speech_mask)
    weights = {"contrastive": alpha, "ctc": beta, "keep_whisper": keep}
    loss = sum(weights.get(k, 1.0) * v for k, v in terms.items())
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


def _whisper_kl(model, teacher, batch: Batch, logits: torch.Tensor,
                encoded: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """KL from the teacher's next-token distribution to the speech path's, on the transcript's
    tokens, over the teacher's own words (the markers, added last, are not among them).
    `encoded` is the student's encoder output, which a frozen encoder shares with the teacher."""
    with torch.no_grad():
        if encoded is None or any(p.requires_grad for p in model.encoder.parameters()):
            encoded, mask = teacher.encode_speech(batch.input_values, batch.attention_mask)
        taught = teacher.decode(encoded.detach(), mask, batch.decoder_ids).logits
    words = taught.shape[-1] - len(TARGET_MARKERS)
    labels = batch.labels.masked_fill(~batch.transcript, IGNORE)
    return token_kl(taught[..., :words], logits[..., :words], labels)


def _aligned_terms(model, batch: Batch, speech: torch.Tensor, speech_mask: torch.Tensor):
    """MCAM's terms (the text, mixed and speech paths, their KLs, the prompts' CL and the CTC),
    and the speech path's output."""
    text = model.text_features(batch.text_ids, batch.text_mask)
    mixed = mix_entities(text, window_attention(text, batch.text_mask, speech, speech_mask),
                         batch.entity_mask)
    prompts_s = model.relation_prompts(speech, speech_mask)
    prompts_t = model.relation_prompts(text, batch.text_mask)
    prompts_m = model.relation_prompts(mixed, batch.text_mask)

    def decode(hidden, mask, prompts):
        return model.decode(*model.project(hidden, mask, prompts), batch.decoder_ids,
                            batch.labels)

    out_t = decode(text, batch.text_mask, prompts_t)
    out_m = decode(mixed, batch.text_mask, prompts_m)
    out_s = decode(speech, speech_mask, prompts_s)
    # The text path teaches only while it knows more than the speech path: a text encoder new
    # beside a pretrained Whisper starts far behind it, and would only pull it back.
    teaching = (out_t.loss.detach() < out_s.loss.detach()).float()
    return {
        "ce_text": out_t.loss, "ce_mixed": out_m.loss, "ce_speech": out_s.loss,
        "kl_mixed": teaching * token_kl(out_t.logits, out_m.logits, batch.labels),
        "kl_speech": teaching * token_kl(out_t.logits, out_s.logits, batch.labels),
        "contrastive": prompt_contrastive(prompts_s, prompts_t),
        "ctc": ctc_alignment(speech, speech_mask, text, batch.text_mask, model.ctc_blank),
    }, out_s


def inputs_objective(model, batch: Batch, given: str) -> dict[str, torch.Tensor]:
    """For a model that reads text (IMAGE): the batch given as "speech", "text" or "both".

    Given text, the text is the transcript, forced at inference, so only the facts are learnt
    (the decoder still reads the transcript as its input)."""
    speech = (batch.input_values, batch.attention_mask) if given != "text" else None
    text = (batch.text_ids, batch.text_mask) if given != "speech" else None
    labels = batch.labels if text is None else batch.labels.masked_fill(batch.transcript, IGNORE)
    out = model.decode(*model.memory(speech, text), batch.decoder_ids, labels)
    return {"loss": out.loss, f"ce_{given}": out.loss.detach()}
