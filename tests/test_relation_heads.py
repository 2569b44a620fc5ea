"""Relation prompts (RPG-MoGe): the CNN heads, the prompt they choose, where it goes in the
decoder's input in training and at inference."""

from __future__ import annotations

import pytest
import torch

from streamre.model.extractor import ModelExtractor
from streamre.model import MCAMModel, load_checkpoint
from streamre.model.checkpoint import with_relation_heads
from streamre.model.config import MCAMConfig
from streamre.model.relation_heads import (
    NO_RELATION, RelationHeads, RelationPrompt, insert_after, relation_token)

from helpers import noise


@pytest.fixture(scope="module")
def headed(tiny_checkpoint):
    model, tokenizer = with_relation_heads(*load_checkpoint(str(tiny_checkpoint)))
    return model.eval(), tokenizer


def test_the_heads_score_a_segment_the_same_alone_and_batched():
    torch.manual_seed(0)
    heads = RelationHeads(5)
    for block in heads.blocks:  # running statistics away from the defaults, as after training
        block["norm"].running_mean.uniform_(-1, 1)
        block["norm"].running_var.uniform_(0.5, 2)
    heads.eval()
    hidden = torch.randn(3, 37, 24)
    lengths = [37, 21, 5]  # odd lengths: pooling keeps their last frame
    mask = torch.arange(37)[None, :] < torch.tensor(lengths)[:, None]
    hidden = hidden.masked_fill(~mask[..., None], 7.0)  # what lies past an end must not count
    with torch.no_grad():
        together = heads(hidden, mask)
        for b, n in enumerate(lengths):
            alone = heads(hidden[b:b + 1, :n], mask[b:b + 1, :n])
            assert torch.allclose(together[b], alone[0], atol=1e-5)
    assert together.shape == (3, 5)


def test_the_prompt_holds_the_relations_heard_or_says_none(headed):
    _, tokenizer = headed
    prompt = RelationPrompt(tokenizer, ["Kill", "Work_For"])
    kill, work, none = tokenizer.convert_tokens_to_ids(
        [relation_token("Kill"), relation_token("Work_For"), NO_RELATION])
    logits = torch.tensor([[3.0, -3.0], [2.0, 1.0], [-1.0, -0.1]])
    assert prompt.chosen(logits) == [[kill], [kill, work], [none]]
    assert len({kill, work, none}) == 3 and tokenizer.unk_token_id not in (kill, work, none)
    assert prompt.targets([[("a", "Kill", "b")], [], [("a", "Other", "b")]]
                          ).tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_the_prompt_goes_after_facts_in_training_and_is_not_learnt():
    facts, pad, ignore = 9, 0, -100
    ids = torch.tensor([[1, 5, 6, 9, 7, 8], [1, 5, 9, 7, 0, 0], [1, 5, 6, 7, 8, 0]])
    labels = torch.tensor([[5, 6, 9, 7, 8, 2], [5, 9, 7, 2, ignore, ignore],
                           [5, 6, 7, 8, 2, ignore]])
    transcript = labels == 5
    new_ids, new_labels, new_transcript = insert_after(
        facts, [[30, 31], [32], [33]], ids, labels, transcript, pad=pad, ignore=ignore)
    assert new_ids.tolist() == [[1, 5, 6, 9, 30, 31, 7, 8], [1, 5, 9, 32, 7, 0, 0, 0],
                                [1, 5, 6, 7, 8, 0, 0, 0]]  # the last row has no <facts>
    assert new_labels.tolist() == [
        [5, 6, 9, ignore, ignore, 7, 8, 2], [5, 9, ignore, 7, 2, ignore, ignore, ignore],
        [5, 6, 7, 8, 2, ignore, ignore, ignore]]
    assert new_transcript.tolist() == [[True] + [False] * 7] * 3


def test_the_prompt_is_decoded_after_facts_and_before_each_order(headed):
    model, tokenizer = headed
    facts = tokenizer.convert_tokens_to_ids("<facts>")
    prompt = RelationPrompt(tokenizer, model.config.relations)
    values, mask = MCAMModel.prepare_waveforms([noise(0.5, 5), noise(1.3, 6)])
    with torch.no_grad():
        hidden, hidden_mask = model.speech_features(values, mask)
        chosen = prompt.chosen(model.relation_heads(hidden, hidden_mask))
    rows = model.generate_in_orders(values, mask, [None], facts, 40, prompt)
    for b, per_order in enumerate(rows):
        (ids, scores), = per_order
        at = ids.index(facts)
        assert ids[at + 1: at + 1 + len(chosen[b])] == chosen[b]
        assert scores[at: at + 1 + len(chosen[b])] == [0.0] * (1 + len(chosen[b]))
    with pytest.raises(ValueError, match="relation heads"):
        model.generate_in_orders(values, mask, [None], facts, 40)
    extracted = ModelExtractor(model, tokenizer).extract([noise(0.5, 5)])
    assert "<rel:" not in extracted[0].text


def test_heads_need_relations_and_speech_only():
    with pytest.raises(ValueError, match="relation heads"):
        MCAMConfig(alignment="none", relation_heads=True)
    with pytest.raises(ValueError, match="relation heads"):
        MCAMConfig(alignment="none", relations=["Kill"], relation_heads=True,
                   modalities=["speech", "text"])
