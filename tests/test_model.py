"""The MCAM-shaped model: real forward passes, save/load, loading errors, the extractor seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamre.inference import ModelExtractor
from streamre.inference.extractor import length_groups
from streamre.model import MCAMModel, create_checkpoint, load_checkpoint
from streamre.model.linearize import Piece

from conftest import FACT, noise


def test_checkpoint_folder_has_the_hf_files(tiny_checkpoint):
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names


def test_save_then_load_gives_identical_outputs(tiny_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    values, mask = MCAMModel.prepare_waveforms([noise(1.0, 0), noise(0.6, 1)])
    labels = tokenizer(["<triplet> a <subj> b <obj> Kill"] * 2, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(values, mask, labels=labels).loss
    model.save_pretrained(tmp_path / "again")
    tokenizer.save_pretrained(tmp_path / "again")
    reloaded, _ = load_checkpoint(str(tmp_path / "again"))
    with torch.no_grad():
        assert torch.equal(reloaded(values, mask, labels=labels).loss, loss)
        a = model.generate_tokens(values, mask, max_new_tokens=8)
        b = reloaded.generate_tokens(values, mask, max_new_tokens=8)
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1])
    assert torch.isfinite(loss) and loss > 0


def test_padding_does_not_change_a_segments_output(tiny_checkpoint):
    model, _ = load_checkpoint(str(tiny_checkpoint))
    short = noise(0.7, 2)
    alone = model.generate_tokens(*MCAMModel.prepare_waveforms([short]), max_new_tokens=6)
    batched = model.generate_tokens(*MCAMModel.prepare_waveforms([noise(2.0, 3), short]),
                                    max_new_tokens=6)
    assert torch.equal(alone[0][0], batched[0][1])


def test_baseline_without_alignment_runs(tmp_path):
    path = create_checkpoint(tmp_path / "lna", alignment="none")
    model, _ = load_checkpoint(str(path))
    assert model.prompts is None
    ids, scores = model.generate_tokens(*MCAMModel.prepare_waveforms([noise(0.5, 4)]),
                                        max_new_tokens=4)
    assert ids.shape == scores.shape and (scores <= 0).all()


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot load model"):
        load_checkpoint(str(tmp_path / "nothing-here"))


def test_extractor_maps_tokens_to_scored_triplets(tiny_checkpoint):
    extractor = ModelExtractor(str(tiny_checkpoint), device="cpu", max_new_tokens=12)
    tok = extractor.tokenizer
    ids = tok("<triplet> David Chen <subj> World Bank <obj> Work_For", add_special_tokens=False
              ).input_ids + [tok.eos_token_id, 5, 6]
    pieces = extractor._pieces(ids, [-0.1] * len(ids))
    assert [p.text for p in pieces if p.text.startswith("<")] == ["<triplet>", "<subj>", "<obj>"]
    from streamre.model.linearize import parse_pieces

    (triplet,) = parse_pieces(pieces)
    assert (triplet.head, triplet.relation, triplet.tail) == ("David Chen", "Work_For", "World Bank")
    assert triplet.confidence == pytest.approx(np.exp(-0.1))
    # And a real batched forward pass through the seam gives one answer per waveform.
    results = extractor.extract([noise(1.0, 5), noise(0.3, 6), noise(2.0, 7)])
    assert len(results) == 3 and all(isinstance(r, list) for r in results)
    assert Piece("x").logprob == 0.0


def test_beam_search_gives_scored_tokens(tiny_checkpoint):
    model, _ = load_checkpoint(str(tiny_checkpoint))
    values, mask = MCAMModel.prepare_waveforms([noise(0.8, 8), noise(0.5, 9)])
    ids, scores = model.generate_tokens(values, mask, max_new_tokens=6, num_beams=3)
    assert ids.shape == scores.shape and ids.shape[0] == 2 and (scores <= 0).all()


# -- the log-mel front end ----------------------------------------------------------------------

def test_mel_filterbank_covers_the_spectrum_with_unit_peaks():
    from streamre.model.mcam import mel_filterbank

    bank = mel_filterbank(400, 80, 16000)
    assert bank.shape == (80, 201)
    peaks = bank.max(dim=1).values
    # Low filters are narrower than a 40 Hz FFT bin, so they peak between bins, but none is empty.
    assert (peaks > 0.2).all() and (peaks <= 1).all()
    centre_hz = bank.argmax(dim=1).float() * 40
    mel_1k = 2595 * np.log10(1 + 1000 / 700)  # 1 kHz sits 1000/2840 of the way up the mel scale
    assert abs(int((centre_hz < 1000).sum()) - 80 * mel_1k / (2595 * np.log10(1 + 8000 / 700))) <= 2
    centres = bank.argmax(dim=1)
    assert (centres[1:] >= centres[:-1]).all() and centres[-1] > 180  # rising, up to 8 kHz
    assert (bank.sum(dim=0)[2:-2] > 0).all()  # no gap between filters


@pytest.fixture(scope="module")
def logmel_checkpoint(tmp_path_factory):
    return create_checkpoint(tmp_path_factory.mktemp("logmel") / "m", preset="tiny",
                             speech_frontend="logmel")


def test_logmel_lengths_match_the_frames_it_produces(logmel_checkpoint):
    model, _ = load_checkpoint(str(logmel_checkpoint))
    assert model.config.speech_frontend == "logmel" and model.config.adapter_layers == 1
    encoder = model.speech_encoder
    for samples in (399, 400, 560, 16000, 16001, 37123):
        values, mask = MCAMModel.prepare_waveforms([noise(samples / 16000, samples)])
        out = encoder(values, mask).last_hidden_state
        assert out.shape[1] == int(encoder._get_feat_extract_output_lengths(mask.sum(-1))[0])


def test_logmel_padding_does_not_change_a_segments_features(logmel_checkpoint):
    model, _ = load_checkpoint(str(logmel_checkpoint))
    short = noise(0.9, 5)
    alone, alone_mask = model.speech_features(*MCAMModel.prepare_waveforms([short]))
    both, both_mask = model.speech_features(*MCAMModel.prepare_waveforms([noise(3.0, 6), short]))
    n = int(alone_mask.sum())
    assert int(both_mask[1].sum()) == n
    assert torch.allclose(alone[0, :n], both[1, :n], atol=1e-4)


def test_spec_augment_masks_only_in_training(logmel_checkpoint):
    model, _ = load_checkpoint(str(logmel_checkpoint))
    values, mask = MCAMModel.prepare_waveforms([noise(2.0, 7)])
    encoder = model.speech_encoder
    clean = encoder.log_mel(values, mask)
    assert torch.equal(clean, encoder.log_mel(values, mask))  # eval: deterministic
    encoder.train()
    torch.manual_seed(0)
    masked = [encoder.log_mel(values, mask) for _ in range(5)]
    zeroed_rows = [int((m[0].abs().sum(dim=1) == 0).sum()) for m in masked]
    assert max(zeroed_rows) > 0 and all(torch.equal(m[m != 0], clean[m != 0]) for m in masked)


# -- batching by length, and lower precision -----------------------------------------------------

@given(st.lists(st.integers(1, 200_000), min_size=1, max_size=40), st.sampled_from([0.0, 0.25, 1.0]))
def test_length_groups_cover_every_segment_and_bound_the_padding(lengths, max_padding):
    groups = length_groups(lengths, max_padding)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        real = sum(lengths[i] for i in group)
        assert max(lengths[i] for i in group) * len(group) <= real * (1 + max_padding) + 1e-9
    if max_padding == 0.0:
        assert all(len({lengths[i] for i in g}) == 1 for g in groups)


def test_split_batches_answer_in_the_order_asked(fact_checkpoint):
    waves = [noise(s, i) for i, s in enumerate((2.0, 0.4, 1.1, 0.3, 2.2))]
    whole = ModelExtractor(str(fact_checkpoint), "cpu", max_padding=float("inf")).extract(waves)
    split = ModelExtractor(str(fact_checkpoint), "cpu", max_padding=0.0)
    apart = split.extract(waves)
    assert [[(t.head, t.relation, t.tail) for t in r] for r in apart] == \
        [[(t.head, t.relation, t.tail) for t in r] for r in whole]
    assert [r[0].confidence for r in apart] == pytest.approx([r[0].confidence for r in whole])
    assert all(r and r[0].head == FACT[0] for r in whole)


def test_bfloat16_weights_still_hear_the_fact(fact_checkpoint):
    extractor = ModelExtractor(str(fact_checkpoint), "cpu", dtype="bfloat16")
    assert extractor.model.dtype == torch.bfloat16
    (result,) = extractor.extract([noise(1.0, 11)])
    assert [(t.head, t.relation, t.tail) for t in result] == [FACT]
    with pytest.raises(ValueError, match="dtype"):
        ModelExtractor(str(fact_checkpoint), "cpu", dtype="int8")
