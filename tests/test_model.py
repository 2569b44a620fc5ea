"""The model on a tiny Whisper-shaped backbone: real forward passes, save/load, padding, the
decoding guards, loading errors, the extractor seam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamre.model.extractor import ModelExtractor
from streamre.model.extractor import length_groups
from streamre.model import MCAMModel, create_checkpoint, load_checkpoint, target_text
from streamre.whisper.features import log_mel
from streamre.whisper.decoding import repeating_tail

from helpers import FACT, FACT_TEXT, noise


def test_checkpoint_folder_has_the_hf_files(tiny_checkpoint):
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names


def teacher_forced(model, tokenizer, waves):
    ids = tokenizer([target_text(FACT_TEXT, [FACT])] * len(waves), return_tensors="pt").input_ids
    return model(*MCAMModel.prepare_waveforms(waves), ids[:, :-1], ids[:, 1:])


def test_save_then_load_gives_identical_outputs(tiny_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    waves = [noise(1.0, 0), noise(0.6, 1)]
    with torch.no_grad():
        loss = teacher_forced(model, tokenizer, waves).loss
    model.save_pretrained(tmp_path / "again")
    tokenizer.save_pretrained(tmp_path / "again")
    reloaded, _ = load_checkpoint(str(tmp_path / "again"))
    values, mask = MCAMModel.prepare_waveforms(waves)
    with torch.no_grad():
        assert torch.equal(teacher_forced(reloaded, tokenizer, waves).loss, loss)
    assert model.generate_tokens(values, mask, 8) == reloaded.generate_tokens(values, mask, 8)
    assert torch.isfinite(loss) and loss > 0


def test_log_mel_matches_whispers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    wave = noise(1.3, 4).astype(np.float32) / 32768
    ours, frames = log_mel(torch.tensor(wave)[None], torch.tensor([len(wave)]))
    # Whisper's own, unpadded: the same bands frame for frame.
    theirs = WhisperFeatureExtractor(feature_size=80)(
        wave, sampling_rate=16000, padding="do_not_pad", return_tensors="np").input_features[0]
    assert int(frames[0]) == len(wave) // 160 == ours.shape[-1]
    assert np.allclose(ours[0].numpy(), theirs[:, : ours.shape[-1]], atol=2e-4)


def test_padding_does_not_change_a_segments_output(tiny_checkpoint):
    model, _ = load_checkpoint(str(tiny_checkpoint))
    short, long = noise(0.7, 2), noise(2.0, 3)
    with torch.no_grad():
        alone, alone_mask = model.encode(*MCAMModel.prepare_waveforms([short]))
        both, both_mask = model.encode(*MCAMModel.prepare_waveforms([long, short]))
    n = int(alone_mask.sum())
    assert int(both_mask[1].sum()) == n and both_mask.shape[1] > n
    assert torch.allclose(alone[0, :n], both[1, :n], atol=1e-5)
    alone_tokens = model.generate_tokens(*MCAMModel.prepare_waveforms([short]), 6)
    batched = model.generate_tokens(*MCAMModel.prepare_waveforms([long, short]), 6)
    assert alone_tokens[0][0] == batched[0][1]


def test_baseline_without_alignment_runs(tmp_path):
    path = create_checkpoint(tmp_path / "lna", alignment="none")
    model, _ = load_checkpoint(str(path))
    assert model.prompts is None and model.projection is None
    ids, scores = model.generate_tokens(*MCAMModel.prepare_waveforms([noise(0.5, 4)]), 4)
    assert len(ids[0]) == len(scores[0]) <= 4 and all(s <= 0 for s in scores[0])


def test_audio_beyond_the_window_is_refused_by_the_model_and_split_by_the_extractor(
        fact_checkpoint):
    extractor = ModelExtractor.load(str(fact_checkpoint), "cpu")
    window = extractor.model.window_samples
    long = noise(window / 16000 + 1, 5)
    with pytest.raises(ValueError, match="longer than the model's 30 s window"):
        extractor.model.encode(*MCAMModel.prepare_waveforms([long]))
    (answer,) = extractor.extract([long])  # heard in two halves, their answers joined
    assert answer.text == f"{FACT_TEXT} {FACT_TEXT}"
    assert [(t.head, t.relation, t.tail) for t in answer.triplets] == [FACT]


@pytest.mark.parametrize("tokens, cut", [
    ([1, 2, 3, 4], 0),
    ([5, 1, 2, 3, 1, 2, 3, 1, 2, 3], 6),  # a 3-token block said three times: keep one
    ([1, 2, 3, 1, 2, 3], 0),  # twice is not yet a loop
    ([9] + [7] * 8, 7),  # one token: eight in a row
    ([9] + [7] * 7, 0),
    ([4, 5] * 4, 6),  # two tokens: four times
])
def test_repeating_tail(tokens, cut):
    assert repeating_tail(tokens) == cut


def test_decoding_stops_a_loop_and_keeps_its_first_copy(tiny_checkpoint):
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    # Make the decoder write one token forever: every hidden state all ones, that token's
    # row of the output table all large.
    loop = tokenizer.convert_tokens_to_ids("<subj>")
    with torch.no_grad():
        model.decoder.embed_tokens.weight[loop] = 50.0
        model.decoder.layer_norm.weight.zero_()
        model.decoder.layer_norm.bias.fill_(1.0)
    ids, _ = model.generate_tokens(*MCAMModel.prepare_waveforms([noise(3.0, 6)]), 100)
    assert ids[0] == [loop]  # eight in a row were written, seven cut


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot load model"):
        load_checkpoint(str(tmp_path / "nothing-here"))


def test_extractor_splits_transcript_from_scored_triplets(tiny_checkpoint):
    extractor = ModelExtractor.load(str(tiny_checkpoint), device="cpu", max_new_tokens=12)
    tok = extractor.tokenizer
    ids = tok(target_text(FACT_TEXT, [FACT]), add_special_tokens=False).input_ids
    answer = extractor.read(ids, [-0.1] * len(ids))
    assert answer.text == FACT_TEXT
    (triplet,) = answer.triplets
    assert (triplet.head, triplet.relation, triplet.tail) == FACT
    assert triplet.confidence == pytest.approx(np.exp(-0.1))
    # No <facts>: all of it is transcript, and there are no triplets.
    assert extractor.read(ids[:3], [0.0] * 3).triplets == []
    # And a real batched forward pass through the seam gives one answer per waveform.
    results = extractor.extract([noise(1.0, 5), noise(0.3, 6), noise(2.0, 7)])
    assert len(results) == 3 and all(isinstance(r.triplets, list) for r in results)


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
    whole = ModelExtractor.load(str(fact_checkpoint), "cpu", max_padding=float("inf")).extract(waves)
    apart = ModelExtractor.load(str(fact_checkpoint), "cpu", max_padding=0.0).extract(waves)
    assert [[(t.head, t.relation, t.tail) for t in r.triplets] for r in apart] == \
        [[(t.head, t.relation, t.tail) for t in r.triplets] for r in whole]
    assert [r.triplets[0].confidence for r in apart] == \
        pytest.approx([r.triplets[0].confidence for r in whole], abs=1e-4)
    assert all(r.triplets and r.triplets[0].head == FACT[0] and r.text == FACT_TEXT
               for r in whole)


def test_bfloat16_weights_still_hear_the_fact(fact_checkpoint):
    extractor = ModelExtractor.load(str(fact_checkpoint), "cpu", dtype="bfloat16")
    assert extractor.model.dtype == torch.bfloat16
    (result,) = extractor.extract([noise(1.0, 11)])
    assert [(t.head, t.relation, t.tail) for t in result.triplets] == [FACT]
    with pytest.raises(ValueError, match="dtype"):
        ModelExtractor.load(str(fact_checkpoint), "cpu", dtype="int8")


def test_float16_checkpoints_load_as_float32(fact_checkpoint, tmp_path):
    model, tokenizer = load_checkpoint(str(fact_checkpoint))
    model.half().save_pretrained(tmp_path / "half")
    tokenizer.save_pretrained(tmp_path / "half")
    size = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert size < (fact_checkpoint / "model.safetensors").stat().st_size * 0.6
    reloaded, _ = load_checkpoint(str(tmp_path / "half"))
    assert reloaded.dtype == torch.float32
    (result,) = ModelExtractor(reloaded, tokenizer).extract([noise(1.0, 12)])
    assert [(t.head, t.relation, t.tail) for t in result.triplets] == [FACT]


def test_a_model_that_reads_text_takes_speech_text_or_both(tiny_checkpoint, tmp_path):
    from streamre.model.checkpoint import with_text
    from streamre.model.config import SPEECH_ABSENT, SPEECH_PRESENT, TEXT_ABSENT

    speech_only, tokenizer = load_checkpoint(str(tiny_checkpoint))
    with pytest.raises(ValueError, match="speech only"):
        speech_only.memory(None, (torch.ones(1, 3, dtype=torch.long),) * 2)
    model = with_text(speech_only)
    assert model.takes_text and model.config.modalities == ["speech", "text"]
    for name, weight in speech_only.state_dict().items():  # every weight kept
        assert torch.equal(model.state_dict()[name], weight)
    values, mask = MCAMModel.prepare_waveforms([noise(1.0, 0)])
    text = tokenizer([" " + FACT_TEXT], return_tensors="pt", add_special_tokens=False)
    ids, text_mask = text.input_ids, text.attention_mask.bool()
    with torch.no_grad():
        speech_part, speech_mask = model.encode(values, mask)
        alone, _ = model.memory((values, mask))
        written, _ = model.memory(None, (ids, text_mask))
        both, both_mask = model.memory((values, mask), (ids, text_mask))
    s, t = speech_part.shape[1], ids.shape[1]
    assert alone.shape[1] == s + 1 and written.shape[1] == 1 + t and both.shape[1] == s + t
    assert both_mask.all()
    # A missing input is one position: its own "absent" row of the presence table.
    assert torch.equal(alone[0, -1], model.presence.weight[TEXT_ABSENT])
    assert torch.equal(written[0, 0], model.presence.weight[SPEECH_ABSENT])
    # Given both, the memory is each present part as it is alone: speech, then text.
    assert torch.equal(both[:, :s], alone[:, :s]) and torch.equal(both[:, s:], written[:, 1:])
    assert torch.allclose(alone[:, :s] - speech_part, model.presence.weight[SPEECH_PRESENT],
                          atol=1e-6)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    again, _ = load_checkpoint(str(tmp_path / "m"))
    with torch.no_grad():
        assert again.takes_text and torch.equal(again.memory(None, (ids, text_mask))[0], written)


# -- several element orders and the vote (RPG-MoGe) ----------------------------------------------

def test_the_orders_vote_on_canonical_triplets():
    from streamre.model.ensemble import vote
    from streamre.triplets import Triplet

    bank = Triplet("David Chen", "Work_For", "the World Bank", 0.9)
    same_bank = Triplet("david chen", "Work_For", "World Bank", 0.7)
    boston = Triplet("David Chen", "Live_In", "Boston", 0.8)
    kept = vote([[bank, boston], [same_bank], [same_bank, Triplet("X", "Kill", "Y", 0.99)]])
    assert [(t.head, t.tail) for t in kept] == [("David Chen", "the World Bank")]  # first spelling
    assert kept[0].confidence == pytest.approx((0.9 + 0.7 + 0.7) / 3 * 3 / 3)
    assert [t.relation for t in vote([[bank, boston], [same_bank]], min_votes=1)] == \
        ["Work_For", "Live_In"]
    assert vote([[bank, bank]], min_votes=2) == [bank]  # one order: its facts, one vote each
    two_of_three = vote([[bank], [bank], []])[0]
    assert two_of_three.confidence == pytest.approx(0.9 * 2 / 3)


def test_left_padded_rows_decode_as_they_would_alone(tiny_checkpoint):
    from streamre.model.decoding import greedy_decode

    model, _ = load_checkpoint(str(tiny_checkpoint))
    # An end token the untrained model does not write: each row decodes until the repeat guard
    # stops it (8 steps of one token said again), its cache and padding mask growing.
    model.config.whisper = {**model.config.whisper, "eos_token_id": 3}
    with torch.no_grad():
        memory, mask = model.encode(*MCAMModel.prepare_waveforms([noise(0.8, 5)]))
    prompt, eos = model.config.decoder_prompt, 3
    rows = [prompt + list(range(40, 40 + n)) for n in (1, 6, 11)]
    width = max(len(r) for r in rows)
    padded = torch.tensor([[eos] * (width - len(r)) + r for r in rows])
    real = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
    with torch.no_grad():
        together = model.decoder_hidden(padded, memory.expand(3, -1, -1), mask.expand(3, -1),
                                        None, real)[:, -1]
        for b, row in enumerate(rows):
            alone = model.decoder_hidden(torch.tensor([row]), memory, mask)[:, -1]
            assert torch.allclose(together[b], alone[0], atol=1e-5)
        decoded = greedy_decode(model, memory.expand(3, -1, -1), mask.expand(3, -1), padded,
                                [12] * 3, real)
        for b, row in enumerate(rows):
            tokens, scores = greedy_decode(model, memory, mask, torch.tensor([row]), [12])
            assert tokens == [decoded[0][b]]
            assert scores[0] == pytest.approx(decoded[1][b], abs=1e-5)


def test_every_order_is_decoded_after_the_transcript_and_its_token(tiny_checkpoint):
    from streamre.model.checkpoint import with_orders
    from streamre.model.orders import ORDERS, order_token

    model, tokenizer = with_orders(*load_checkpoint(str(tiny_checkpoint)), list(ORDERS))
    orders = [tokenizer.convert_tokens_to_ids(order_token(o)) for o in ORDERS]
    facts = tokenizer.convert_tokens_to_ids("<facts>")
    waves = [noise(0.5, 5), noise(1.7, 6)]
    together = model.generate_in_orders(*MCAMModel.prepare_waveforms(waves), orders, facts, 40)
    for rows in together:
        assert len(rows) == 6 and len({tuple(ids[:ids.index(facts)]) for ids, _ in rows}) == 1
        for (ids, scores), order in zip(rows, orders, strict=True):
            assert ids[ids.index(facts) + 1] == order and len(scores) == len(ids)
    with pytest.raises(ValueError, match="element orders"):
        ModelExtractor(*load_checkpoint(str(tiny_checkpoint)), ensemble=True)
