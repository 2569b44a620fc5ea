"""The batching policy on its own: jobs and times in, decisions out, no model and no clock."""

from __future__ import annotations

import numpy as np

from streamre.inference.batching import (TEXT_MAX_WAIT_S, BatchPolicy, RunSpeech, RunText,
                                         SpeechJob, TextJob, Wait)


def speech(session: str, seconds: float = 1.0, at: float = 0.0) -> SpeechJob:
    return SpeechJob(session, np.zeros(int(seconds * 16000), np.int16), at)


def sessions(decision) -> list[str]:
    return [job.session_id for job in decision.jobs]


def test_a_lone_producer_goes_at_once():
    policy = BatchPolicy(max_batch=8, gather_s=0.3)
    policy.add_speech(speech("a"))
    assert sessions(policy.decide(0.0, live_producers=1)) == ["a"]
    assert policy.decide(0.0, live_producers=1) is None


def test_a_batch_waits_for_other_live_producers_and_goes_when_all_have_spoken():
    policy = BatchPolicy(max_batch=8, gather_s=0.3)
    policy.add_speech(speech("a"))
    assert policy.decide(10.0, live_producers=3) == Wait(10.3)
    policy.add_speech(speech("b", at=10.1))
    assert policy.decide(10.1, live_producers=3) == Wait(10.3)  # the same window, not a new one
    policy.add_speech(speech("c", at=10.2))
    assert sessions(policy.decide(10.2, live_producers=3)) == ["a", "b", "c"]


def test_the_gather_window_ends_the_wait():
    policy = BatchPolicy(max_batch=8, gather_s=0.3)
    policy.add_speech(speech("a"))
    assert isinstance(policy.decide(0.0, live_producers=None), Wait)  # unknown: may join
    assert sessions(policy.decide(0.3, live_producers=None)) == ["a"]
    policy.add_speech(speech("b", at=1.0))
    assert policy.decide(1.0, live_producers=None) == Wait(1.3)  # a new batch, a new window


def test_no_wait_when_closing_full_or_not_gathering():
    for policy, closing in ((BatchPolicy(8, 0.3), True), (BatchPolicy(2, 0.3), False),
                            (BatchPolicy(8, 0.0), False)):
        policy.add_speech(speech("a"))
        policy.add_speech(speech("a"))
        assert isinstance(policy.decide(0.0, live_producers=5, closing=closing), RunSpeech)


def test_sessions_take_turns_and_a_batch_holds_at_most_max_batch():
    policy = BatchPolicy(max_batch=2, gather_s=0.0)
    for job in [speech("a"), speech("a"), speech("a"), speech("b")]:
        policy.add_speech(job)
    assert sessions(policy.decide(0.0)) == ["a", "b"]
    assert sessions(policy.decide(0.0)) == ["a", "a"]


def test_a_batch_holds_one_window_and_the_other_sessions_keep_their_turn():
    policy = BatchPolicy(max_batch=8, gather_s=0.0,
                         window_of=lambda w: 10 if len(w) <= 10 * 16000 else 20)
    for job in [speech("a", 3), speech("b", 12), speech("c", 4), speech("a", 15)]:
        policy.add_speech(job)
    assert sessions(policy.decide(0.0)) == ["a", "c"]
    assert sessions(policy.decide(0.0)) == ["b", "a"]  # b kept its place ahead of a


def test_typed_sentences_never_hold_up_audio_but_never_wait_past_their_bound():
    policy = BatchPolicy(max_batch=8, gather_s=0.3)
    for i in range(3):
        policy.add_text(TextJob("v", f"sentence {i}", 0.0))
    policy.add_speech(speech("a", at=0.0))
    assert isinstance(policy.decide(0.0, live_producers=1), RunSpeech)  # audio first
    assert sessions(policy.decide(0.1, live_producers=1)) == ["v"] * 3
    policy.add_text(TextJob("v", "late", 1.0))
    policy.add_speech(speech("b", at=1.0))
    wait = policy.decide(1.0, live_producers=4)  # the speech batch gathers ...
    assert wait == Wait(1.3)
    policy.add_text(TextJob("v", "later", 1.0))
    assert isinstance(policy.decide(1.0 + TEXT_MAX_WAIT_S, live_producers=4), RunText)


def test_text_waiting_behind_gathering_audio_is_woken_by_its_bound():
    policy = BatchPolicy(max_batch=8, gather_s=5.0)
    policy.add_speech(speech("a"))
    policy.add_text(TextJob("v", "hello", 0.0))
    assert policy.decide(0.0, live_producers=2) == Wait(TEXT_MAX_WAIT_S)


def test_drain_empties_every_queue():
    policy = BatchPolicy()
    policy.add_speech(speech("a"))
    policy.add_text(TextJob("v", "x", 0.0))
    assert len(policy.drain()) == 2 and policy.decide(0.0) is None and policy.pending == 0
