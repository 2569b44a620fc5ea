"""Each MCAM loss on a case small enough to check by hand, and the stop-gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from streamre.model import load_checkpoint
from streamre.training.losses import (
    ctc_alignment, mix_entities, prompt_contrastive, token_kl, window_attention)
from streamre.training.objective import Batch, mcam_objective


def test_token_kl_by_hand_and_padding_ignored():
    teacher = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    student = torch.log(torch.tensor([[[0.25, 0.75], [0.1, 0.9]]]))
    labels = torch.tensor([[1, -100]])  # the second position is padding
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert token_kl(teacher, student, labels).item() == pytest.approx(expected, rel=1e-5)
    assert token_kl(teacher, teacher, labels).item() == pytest.approx(0.0, abs=1e-7)


def test_token_kl_stops_the_gradient_at_the_teacher():
    teacher_layer, student_layer = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
    x = torch.randn(2, 5, 3)
    token_kl(teacher_layer(x), student_layer(x), torch.zeros(2, 5, dtype=torch.long)).backward()
    assert teacher_layer.weight.grad is None
    assert student_layer.weight.grad is not None and student_layer.weight.grad.abs().sum() > 0


def test_prompt_contrastive_by_hand():
    prompts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # B=1, R=2, orthogonal
    # cos/τ: 10 for the positive, 0 for the negative: CE = log(1 + e^-10), both directions.
    expected = math.log(1 + math.exp(-10))
    assert prompt_contrastive(prompts, prompts, 0.1).item() == pytest.approx(expected, rel=1e-3)
    swapped = prompts.flip(1)  # every positive now points the wrong way
    assert prompt_contrastive(prompts, swapped, 0.1).item() == pytest.approx(
        math.log(1 + math.exp(10)), rel=1e-4)


def test_ctc_alignment_by_hand_and_text_is_a_target():
    text = torch.tensor([[[1.0, 0.0]]], requires_grad=True)  # one sample, one token
    blank = torch.tensor([0.0, 1.0])
    speech = torch.tensor([[[2.0, 0.0]]], requires_grad=True)  # one frame
    loss = ctc_alignment(speech, torch.tensor([[True]]), text, torch.tensor([[True]]), blank)
    # scores: blank 0, token 2, so -log p(token) = log(1 + e^-2)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-5)
    loss.backward()
    assert text.grad is None and speech.grad is not None


def test_ctc_uses_the_whole_batch_as_vocabulary():
    # Two samples whose tokens are each other's: frames matching the other sample cost more.
    text = torch.tensor([[[5.0, 0.0]], [[0.0, 5.0]]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    blank = torch.tensor([-5.0, -5.0])
    right = ctc_alignment(text.clone(), mask, text, mask, blank)
    wrong = ctc_alignment(text.flip(0), mask, text, mask, blank)
    assert right.item() < 0.01 < wrong.item()


def test_window_attention_by_hand():
    # l_t = l_s = 4: half-width 2; token 0 sees frames 0..2, token 3 sees frames 1..3.
    speech = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [100.0]]])
    speech_mask = torch.tensor([[True, True, True, True, False]])  # frame 4 is padding
    text = torch.zeros(1, 4, 1)  # equal scores: a plain mean over the window
    out = window_attention(text, torch.ones(1, 4, dtype=torch.bool), speech, speech_mask)
    assert out[0, 0, 0].item() == pytest.approx(2.0)  # mean(1, 2, 3)
    assert out[0, 3, 0].item() == pytest.approx(3.0)  # mean(2, 3, 4)


def test_mix_entities_swaps_only_entity_tokens():
    text, speech = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    mixed = mix_entities(text, speech, torch.tensor([[False, True, False]]))
    assert mixed[0, :, 0].tolist() == [0.0, 1.0, 0.0]


def tiny_batch(tokenizer) -> Batch:
    from streamre.training.data import Collator, Example

    rng = np.random.default_rng(0)
    examples = [
        Example(None, "David Chen works for the World Bank.",
                [("David Chen", "Work_For", "World Bank")],
                _samples=(rng.standard_normal(16000) * 3000).astype(np.int16)),
        Example(None, "Maria lives in Boston.", [("Maria", "Live_In", "Boston")],
                _samples=(rng.standard_normal(12000) * 3000).astype(np.int16))]
    return Collator(tokenizer)(examples)


def test_objective_combines_every_term_and_trains_every_part(tiny_checkpoint):
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    model.train()
    out = mcam_objective(model, tiny_batch(tokenizer))
    terms = ["ce_text", "ce_mixed", "ce_speech", "kl_mixed", "kl_speech", "contrastive", "ctc"]
    assert all(torch.isfinite(out[k]) for k in terms)
    expected = sum(out[k] for k in terms) - 0.2 * out["contrastive"] - 0.8 * out["ctc"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    out["loss"].backward()
    for part in (model.encoder, model.prompts, model.text_encoder, model.projection,
                 model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert model.ctc_blank.grad.abs().sum() > 0


def test_baseline_objective_is_speech_ce_only(tmp_path):
    from streamre.model import create_checkpoint

    model, tokenizer = load_checkpoint(str(create_checkpoint(tmp_path / "lna", alignment="none")))
    out = mcam_objective(model, tiny_batch(tokenizer))
    assert set(out) == {"loss", "ce_speech"} and torch.isfinite(out["loss"])


def test_keeping_whisper_adds_its_weighted_kl_on_transcript_tokens_only(tmp_path):
    from streamre.model import create_checkpoint

    model, tokenizer = load_checkpoint(str(create_checkpoint(tmp_path / "s", alignment="none")))
    teacher, _ = load_checkpoint(str(create_checkpoint(tmp_path / "t", alignment="none", seed=3)))
    batch = tiny_batch(tokenizer)
    facts = tokenizer.convert_tokens_to_ids("<facts>")
    words = batch.labels[batch.transcript]
    assert words.numel() and facts not in words.tolist() and (words != -100).all()
    out = mcam_objective(model, batch, teacher=teacher, keep=0.5)
    assert out["keep_whisper"] > 0
    assert out["loss"].item() == pytest.approx(
        (out["ce_speech"] + 0.5 * out["keep_whisper"]).item(), rel=1e-5)
    # Its own teacher: nothing to keep.
    assert mcam_objective(model, batch, teacher=model, keep=0.5)["keep_whisper"].item() == \
        pytest.approx(0.0, abs=1e-5)
