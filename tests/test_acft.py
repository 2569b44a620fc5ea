"""The short-window fine-tune's loss (`streamre.training.acft`) on a tiny Whisper made here:
real forward and backward passes, the decoder left as it was."""

from __future__ import annotations

import copy

import numpy as np
import torch

from helpers import noise
from streamre.training.acft import acft_loss, own_window


def tiny_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    return WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_source_positions=1500, max_target_positions=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)).eval()


def test_windows_are_whole_seconds_that_hold_the_clip():
    assert [own_window(n) for n in (1, 16000, 16001, 47000, 10**7)] == [1, 1, 2, 3, 30]


def test_the_loss_is_nothing_on_the_full_window_and_training_lowers_it_on_short_ones():
    teacher = tiny_whisper()
    for p in teacher.parameters():  # as the trainer holds it
        p.requires_grad_(False)
    clips = [(noise(1.3, seed), [1, 5, 9, 11, 2]) for seed in (1, 2)]
    # The teacher's own encoder on 30 s clips is the target itself.
    long = [(np.concatenate([w, np.zeros(30 * 16000 - len(w), np.int16)]), ids)
            for w, ids in clips]
    assert acft_loss(teacher.model.encoder, teacher, long).item() < 1e-10
    student = copy.deepcopy(teacher.model.encoder).train().requires_grad_(True)
    decoder = {k: v.clone() for k, v in teacher.model.decoder.state_dict().items()}
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = acft_loss(student, teacher, clips)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0 and losses[-1] < 0.5 * losses[0], losses
    # Only the encoder learns: the decoder, which holds the words, is as it was.
    assert all(torch.equal(v, teacher.model.decoder.state_dict()[k]) for k, v in decoder.items())
