"""Hearing: windows and token caps, the guards, and the two engines agreeing on a tiny Whisper
that both load (transformers writes it, CTranslate2's own converter converts it)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from streamre import SAMPLE_RATE
from streamre.hearing import HearingOptions, Transcriber, load_hearing
from streamre.hearing.features import window_log_mel
from streamre.hearing.guards import Decoded, compression_ratio, is_silence, loops, without_repeats


def test_a_segment_takes_the_smallest_window_that_holds_it():
    options = HearingOptions(windows_s=(10, 20, 30))
    assert options.window_for(3 * SAMPLE_RATE) == 10
    assert options.window_for(10 * SAMPLE_RATE) == 10
    assert options.window_for(10 * SAMPLE_RATE + 1) == 20
    assert options.window_for(29 * SAMPLE_RATE) == 30
    assert HearingOptions(windows_s=(30,)).window_for(SAMPLE_RATE) == 30


def test_the_token_cap_grows_with_the_segment_and_stops_at_max_new_tokens():
    options = HearingOptions(max_new_tokens=100)
    assert options.token_budget(SAMPLE_RATE) < options.token_budget(5 * SAMPLE_RATE) <= 100
    assert options.token_budget(60 * SAMPLE_RATE) == 100


@pytest.mark.parametrize("windows", [(), (20, 10), (0, 30), (10, 40)])
def test_windows_must_be_ascending_and_within_whispers_own(windows):
    with pytest.raises(ValueError):
        HearingOptions(windows_s=windows)


def test_window_features_match_whispers_own_front_end():
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(1)
    wave = (rng.standard_normal(3 * SAMPLE_RATE) * 3000).astype(np.int16)
    expected = WhisperFeatureExtractor(feature_size=80)(
        wave.astype(np.float32) / 32768, sampling_rate=SAMPLE_RATE,
        return_tensors="np").input_features[0]
    assert np.allclose(window_log_mel([wave], 30)[0], expected, atol=1e-4)
    # A 10 s window is the first thousand frames of the same features, up to the peak's clamp.
    assert window_log_mel([wave], 10).shape == (1, 80, 1000)
    with pytest.raises(ValueError, match="does not fit"):
        window_log_mel([wave], 2)


def test_guards_tell_loops_and_silence_from_speech():
    options = HearingOptions()
    speech = Decoded([5, 6, 7, 8], [-0.1] * 4, 0.01, ended=True)
    assert not loops(speech, "Elena Petrova works for Spotify.", options)
    assert not is_silence(speech, options)
    looped = Decoded([5, 6, 7] * 5, [-0.1] * 15, 0.01, ended=True)
    assert loops(looped, "a b c a b c a b c a b c a b c", options)
    assert without_repeats(looped).tokens == [5, 6, 7]
    assert loops(Decoded([5, 6], [-0.1] * 2, 0.01, ended=False), "Elena", options)  # capped
    twice = Decoded([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], [-0.1] * 10, 0.01, ended=True)
    assert loops(twice, "Let's move on. Let's move on.", options)
    assert not loops(Decoded([1, 2, 1, 2, 9], [-0.1] * 5, 0.01, True), "no, no, fine", options)
    assert compression_ratio("thank you. " * 20) > options.compression_ratio_threshold
    assert is_silence(Decoded([9], [-2.0], 0.9, ended=True), options)
    assert not is_silence(Decoded([9], [-0.2], 0.9, ended=True), options)  # sure of its words
    assert is_silence(Decoded([9], [-0.2], 0.99, ended=True), options)  # but not past sure


class ScriptedWhisper:
    """A backend that answers each window with what the script gives, and records its calls:
    the guards' flow is tested apart from any model."""

    n_mels = 80
    workers = 1

    def __init__(self, answers: dict[int, Decoded]) -> None:
        self.answers, self.calls = answers, []

    def each(self, call, items):
        return [call(item) for item in items]

    def encode(self, features):
        return features

    def decode(self, features, max_new_tokens, previous=(), beam_size=1):
        window = features.shape[-1] // 100
        self.calls.append((window, features.shape[0], max_new_tokens))
        return [self.answers[window]] * features.shape[0]

    def text(self, tokens):
        return " ".join(f"w{t}" for t in tokens)


def test_a_looping_segment_is_decoded_again_at_30_s_and_each_guard_is_counted():
    counted = []
    backend = ScriptedWhisper({10: Decoded([1, 2] * 8, [-0.1] * 16, 0.0, ended=True),
                               30: Decoded([3, 4], [-0.1] * 2, 0.0, ended=True)})
    hearing = Transcriber(backend, HearingOptions(), "scripted", "cpu", counted.append)
    heard = hearing.transcribe([np.zeros(3 * SAMPLE_RATE, np.int16)])[0]
    assert heard.text == "w3 w4" and heard.window_s == 30 and heard.guards == ("loop_retried",)
    assert [c[0] for c in backend.calls] == [10, 30]
    assert counted == ["loop_retried"]


def test_a_segment_that_still_loops_at_30_s_keeps_one_copy_of_its_repeats():
    backend = ScriptedWhisper({10: Decoded([1, 2] * 8, [-0.1] * 16, 0.0, ended=True),
                               30: Decoded([7, 1, 2, 1, 2, 1, 2, 1, 2], [-0.1] * 9, 0.0, True)})
    counted = []
    heard = Transcriber(backend, HearingOptions(), "s", "cpu", counted.append).transcribe(
        [np.zeros(3 * SAMPLE_RATE, np.int16)])[0]
    assert heard.text == "w7 w1 w2"
    assert counted == ["loop_retried", "repeats_cut"]


def test_tokens_past_a_short_segments_cap_are_cut_and_counted():
    backend = ScriptedWhisper({10: Decoded(list(range(100, 190)), [-0.1] * 90, 0.0, True),
                               30: Decoded(list(range(100, 190)), [-0.1] * 90, 0.0, True)})
    counted = []
    options = HearingOptions()
    heard = Transcriber(backend, options, "s", "cpu", counted.append).transcribe(
        [np.zeros(SAMPLE_RATE, np.int16)])[0]
    assert len(heard.text.split()) == options.token_budget(SAMPLE_RATE)
    assert "capped" in counted


def test_segments_of_one_window_share_a_call_and_long_ones_are_heard_in_parts():
    backend = ScriptedWhisper({w: Decoded([1], [-0.1], 0.0, True) for w in (10, 20, 30)})
    hearing = Transcriber(backend, HearingOptions(), "s", "cpu")
    heard = hearing.transcribe([np.zeros(n * SAMPLE_RATE, np.int16) for n in (3, 15, 4, 50)])
    assert sorted(c[:2] for c in backend.calls) == [(10, 2), (20, 1), (30, 2)]
    assert [h.text for h in heard] == ["w1", "w1", "w1", "w1 w1"]  # 50 s: two parts of 25 s


# -- the engines on a tiny Whisper both can load ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_whisper_folders(tmp_path_factory):
    """A random tiny Whisper with a decoder that speaks: transformers' folder and CTranslate2's."""
    import ctranslate2
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from streamre.model.checkpoint import SEED_TEXTS
    from streamre.whisper.tokenizer import ENDOFTEXT, NOTIMESTAMPS, START, prompted_tokenizer

    folder = tmp_path_factory.mktemp("whisper")
    # Whisper's layout: text tokens first, then the special ones, then timestamps.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(SEED_TEXTS, trainers.BpeTrainer(
        vocab_size=300, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.add_special_tokens([ENDOFTEXT, START, "<|startofprev|>", "<|nocaptions|>", NOTIMESTAMPS])
    tokenizer = prompted_tokenizer(bpe, [START, NOTIMESTAMPS])
    eos = tokenizer.eos_token_id
    torch.manual_seed(3)
    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=len(tokenizer) + 8, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_source_positions=1500, max_target_positions=64,
        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        suppress_tokens=[tokenizer.convert_tokens_to_ids(NOTIMESTAMPS)],
        begin_suppress_tokens=[eos])).eval()
    with torch.no_grad():  # sharpen the output so greedy choices are clear, and keep the end
        model.proj_out.weight.mul_(8)  # token rare enough that rows write several tokens
    model.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    ctranslate2.converters.TransformersConverter(
        str(folder / "hf"), copy_files=["tokenizer.json"]).convert(
        str(folder / "ct2"), quantization="float32")
    return folder


def test_ctranslate2_and_torch_hear_alike(tiny_whisper_folders):
    options = HearingOptions(windows_s=(10, 30), max_new_tokens=12)
    engines = [load_hearing(str(tiny_whisper_folders / "ct2"), "cpu", backend,
                            "float32", options=options) for backend in ("ctranslate2", "torch")]
    assert [e.name.split(" (")[1] for e in engines] == ["ctranslate2 float32)", "torch float32)"]
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(n) * 4000).astype(np.int16)
             for n in (2 * SAMPLE_RATE, 3 * SAMPLE_RATE, 12 * SAMPLE_RATE)]
    features = window_log_mel(waves[:2], 10, engines[0].backend.n_mels)
    states = [e.backend.encode(features) for e in engines]
    ct2, torch_ = (e.backend.decode(s, 12) for e, s in zip(engines, states, strict=True))
    for a, b in zip(ct2, torch_, strict=True):
        assert a.tokens == b.tokens and len(a.tokens) >= 3
        assert a.ended == b.ended
    # After previous text (a vocabulary's prompt) as well; the prompt changes what is written.
    previous = engines[0].backend.vocabulary.previous_text(["David Chen", "World Bank"], 20)
    ct2, torch_ = (e.backend.decode(s, 12, previous) for e, s in zip(engines, states, strict=True))
    for a, b in zip(ct2, torch_, strict=True):
        assert a.tokens == b.tokens and a.no_speech_prob == pytest.approx(b.no_speech_prob,
                                                                           abs=1e-4)
    # Beam search as well, as the vocabulary's second pass runs it: the same best sequence.
    beams = [e.backend.decode(s, 12, previous, beam_size=4) for e, s in zip(engines, states, strict=True)]
    for a, b in zip(*beams, strict=True):
        assert a.tokens == b.tokens and a.ended == b.ended
    # ... and a surer one than greedy decoding found (this tiny model's rows run to the cap).
    assert all(sum(b.logprobs) > sum(g.logprobs) + 0.5 for b, g in zip(beams[1], torch_, strict=True))
    # Both ears score a transcript alike; what the model wrote scores above a sentence it did
    # not write.
    greedy = engines[1].backend.text(torch_[0].tokens)
    scores = [e.backend.score(s, [greedy, "David Chen works for the World Bank."], previous)
              for e, s in zip(engines, states, strict=True)]
    assert scores[0] == pytest.approx(scores[1], rel=5e-3)
    assert scores[1][0] > scores[1][1]
    # The whole path too, windows and guards included, and from the transformers folder.
    from_hf = load_hearing(str(tiny_whisper_folders / "hf"), "cpu", "torch", options=options)
    texts = [[h.text for h in e.transcribe(waves)] for e in (*engines, from_hf)]
    assert texts[0] == texts[1] == texts[2] and any(texts[0])


def test_two_workers_hear_what_one_call_at_a_time_hears(tiny_whisper_folders):
    """CTranslate2's calls side by side, one thread each on the workers' replicas: the same
    transcripts, guards and scores as every call alone."""
    options = HearingOptions(windows_s=(10, 30), max_new_tokens=10, far_threshold=40)
    rng = np.random.default_rng(11)
    waves = [(rng.standard_normal(int(s * SAMPLE_RATE)) * 4000).astype(np.int16)
             for s in (1.5, 2, 3, 4, 12, 35)]  # two windows, and one heard in parts
    vocabularies = [["CCCD", "CCDC Bank", "David Chen"]] * len(waves)  # close to what it writes
    counted: dict[int, list[str]] = {1: [], 2: []}
    engines = {w: load_hearing(str(tiny_whisper_folders / "ct2"), "cpu", "ctranslate2",
                               "float32", options=options, on_guard=counted[w].append,
                               workers=w) for w in (1, 2)}
    assert [engines[w].backend.workers for w in (1, 2)] == [1, 2]
    heard = {w: e.transcribe(waves, vocabularies) for w, e in engines.items()}
    assert heard[1] == heard[2] and any(h.text for h in heard[1])
    assert sorted(counted[1]) == sorted(counted[2])
    # Every kind of call was compared: the second pass and the ear ran too.
    assert {"prompted", "prompt_rejected"} & set(counted[1])
    assert {"snapped", "snap_refused"} & set(counted[1])
    # The calls ran on the workers, and a call made on a worker does not wait for another.
    backend = engines[2].backend
    names = backend.each(lambda _: threading.current_thread().name, range(4))
    assert all(n.startswith("whisper-worker") for n in names)
    assert backend.each(lambda _: backend.each(lambda k: k * 2, [1, 2]), [0, 1]) == [[2, 4]] * 2


def test_a_missing_whisper_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--asr"):
        load_hearing(str(tmp_path / "nowhere"), "cpu", "torch")
    with pytest.raises(ValueError, match="asr backend"):
        load_hearing("", "cpu", "onnx")


def test_a_whisper_split_in_parts_is_heard_as_the_whole(tiny_whisper_folders, tmp_path):
    whole = tiny_whisper_folders / "ct2"
    data = (whole / "model.bin").read_bytes()
    split = tmp_path / "split"
    split.mkdir()
    half = len(data) // 2
    (split / "model.bin.part1").write_bytes(data[:half])
    (split / "model.bin.part2").write_bytes(data[half:])
    for name in ("tokenizer.json", "config.json", "vocabulary.json"):
        if (whole / name).is_file():
            (split / name).write_bytes((whole / name).read_bytes())
    wave = (np.random.default_rng(5).standard_normal(2 * SAMPLE_RATE) * 4000).astype(np.int16)
    heard = [load_hearing(str(folder), "cpu", "ctranslate2", "float32").transcribe([wave])[0]
             for folder in (whole, split)]
    assert heard[0] == heard[1] and heard[0].text
