"""The MCAM losses, as pure functions of tensors (each small enough to check by hand in a test).

Shapes: B batch, T text tokens, S speech frames, L target tokens, V vocabulary, R relations,
D model width. Masks are boolean, True where a position is real.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # label value that no loss counts (Hugging Face convention)


def token_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per target token, averaged over real tokens; (B, L, V) logits.

    The teacher side is detached: the text path teaches the speech and mixed paths, never the
    other way round.
    """
    teacher = F.log_softmax(teacher_logits.detach().float(), dim=-1)
    student = F.log_softmax(student_logits.float(), dim=-1)
    per_token = (teacher.exp() * (teacher - student)).sum(-1)
    real = labels != IGNORE
    return (per_token * real).sum() / real.sum().clamp(min=1)


def prompt_contrastive(speech_prompts: torch.Tensor, text_prompts: torch.Tensor,
                       temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE between the R speech and R text prompt vectors of every sample, (B, R, D) each.

    Each speech prompt's positive is the text prompt of the same sample and relation; the other
    B*R - 1 text prompts are its negatives (and symmetrically), cosine similarity over τ.
    """
    speech = F.normalize(speech_prompts.reshape(-1, speech_prompts.shape[-1]).float(), dim=-1)
    text = F.normalize(text_prompts.reshape(-1, text_prompts.shape[-1]).float(), dim=-1)
    logits = speech @ text.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def ctc_alignment(speech: torch.Tensor, speech_mask: torch.Tensor, text: torch.Tensor,
                  text_mask: torch.Tensor, blank: torch.Tensor) -> torch.Tensor:
    """CTC of speech frames against the batch's text token features.

    The "vocabulary" is the blank vector followed by every real text token feature of the batch,
    concatenated; frame s of sample b scores each entry by dot product, and sample b's target is
    the sequence of its own tokens' entries. Text features are detached: they are the targets.
    speech (B, S, D), text (B, T, D), blank (D,).
    """
    text = text.detach()
    vocabulary = torch.cat([blank[None, :], text[text_mask]], dim=0)  # (1 + sum T_b, D)
    log_probs = F.log_softmax((speech.float() @ vocabulary.float().T), dim=-1)  # (B, S, V')
    text_lengths = text_mask.sum(-1)
    targets = torch.arange(1, vocabulary.shape[0], device=speech.device)  # entry of each token
    return F.ctc_loss(log_probs.transpose(0, 1), targets, speech_mask.sum(-1), text_lengths,
                      blank=0, reduction="mean", zero_infinity=True)


def window_attention(text: torch.Tensor, text_mask: torch.Tensor, speech: torch.Tensor,
                     speech_mask: torch.Tensor) -> torch.Tensor:
    """The speech feature of every text token, (B, T, D): token i of a text of l_t tokens attends
    to the speech frames within 2·l_s/l_t of frame i·l_s/l_t (l_s real frames)."""
    l_t = text_mask.sum(-1, keepdim=True).clamp(min=1).float()  # (B, 1)
    l_s = speech_mask.sum(-1, keepdim=True).float()
    i = torch.arange(text.shape[1], device=text.device).float()[None, :]  # (1, T)
    center = i * l_s / l_t  # (B, T)
    half_width = 2 * l_s / l_t  # (B, 1)
    j = torch.arange(speech.shape[1], device=text.device).float()[None, None, :]  # (1, 1, S)
    inside = ((j - center[..., None]).abs() <= half_width[..., None]) & speech_mask[:, None, :]
    # A window can miss every real frame only when it lies past the end: use the last frame.
    last = (l_s.long() - 1).clamp(min=0)  # (B, 1)
    fallback = torch.zeros_like(inside).scatter_(2, last[:, :, None].expand(-1, inside.shape[1], 1),
                                                 True)
    inside = torch.where(inside.any(-1, keepdim=True), inside, fallback)
    scores = text @ speech.transpose(1, 2) / text.shape[-1] ** 0.5  # (B, T, S)
    weights = scores.masked_fill(~inside, float("-inf")).softmax(-1)
    return weights @ speech


def mix_entities(text: torch.Tensor, speech_for_text: torch.Tensor,
                 entity_mask: torch.Tensor) -> torch.Tensor:
    """H_m: the text features with entity tokens replaced by their speech features."""
    return torch.where(entity_mask[..., None], speech_for_text, text)
