"""Shared fixtures: speech synthesised with espeak-ng, a tiny real checkpoint, a live server."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamre.audio import read_audio
from helpers import FACT, FACT_TEXT, noise, spert_items, synthesize, tiny_encoder
from streamre.config import ServeConfig

SENTENCES = [
    "David Chen works for the World Bank.",
    "Maria Lopez lives in Boston.",
]


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def utterance_wav(speech_dir) -> Path:
    """One sentence of speech at espeak's native 22050 Hz."""
    return synthesize(SENTENCES[0], speech_dir / "utterance.wav")


@pytest.fixture(scope="session")
def meeting_audio(speech_dir) -> np.ndarray:
    """Two utterances with a second of silence around each, 16 kHz int16."""
    silence = np.zeros(16000, dtype=np.int16)
    parts = [silence]
    for i, text in enumerate(SENTENCES):
        parts += [read_audio(synthesize(text, speech_dir / f"s{i}.wav")), silence]
    return np.concatenate(parts)


@pytest.fixture(scope="session")
def meeting_wav(speech_dir, meeting_audio) -> Path:
    import soundfile

    path = speech_dir / "meeting.wav"
    soundfile.write(path, meeting_audio, 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from streamre.model import create_checkpoint

    return create_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", seed=1)


FIXTURE_THREADS = 1  # small trainings repeat exactly only on a fixed thread count
MAX_ROUNDS = 4  # a fixture's training that has not learnt its data by then fails loudly


@pytest.fixture(scope="session")
def fact_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint trained (a few seconds, real gradient steps) to hear one sentence and
    its fact in any sound, so tests can watch transcripts and triplets travel from a forward
    pass to the room graph. Seeded and on one thread; trained until it answers unseen noise
    with its sentence and fact, in at most MAX_ROUNDS rounds."""
    import torch

    from streamre.model.extractor import ModelExtractor
    from streamre.model import MCAMModel, create_checkpoint, load_checkpoint, target_text
    from streamre.training.seeding import fixed_threads, seed_everything

    path = create_checkpoint(tmp_path_factory.mktemp("ckpt") / "fact", seed=1)
    model, tokenizer = load_checkpoint(str(path))
    with fixed_threads(FIXTURE_THREADS):
        seed_everything(0)
        rng = np.random.default_rng(0)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        ids = tokenizer([target_text(FACT_TEXT, [FACT])] * 3, return_tensors="pt").input_ids
        for _ in range(MAX_ROUNDS):
            model.train()
            for _ in range(80):
                waves = [(rng.standard_normal(int(16000 * rng.uniform(0.3, 1.5)))
                          * rng.uniform(100, 5000)).astype(np.int16) for _ in range(3)]
                loss = model(*MCAMModel.prepare_waveforms(waves), ids[:, :-1], ids[:, 1:]).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            checks = [noise(seconds, 100 + seed) for seed, seconds in enumerate((0.4, 1.0, 2.0))]
            answers = ModelExtractor(model, tokenizer).extract(checks)
            if all(a.text == FACT_TEXT and [(t.head, t.relation, t.tail) for t in a.triplets]
                   == [FACT] for a in answers):
                break
        else:
            pytest.fail(f"the fact checkpoint did not learn its fact: {answers}")
    model.save_pretrained(path)
    return path


class LiveServer:
    """A `StreamServer` on a random port, on an event loop in a background thread."""

    def __init__(self, config: ServeConfig, load_extractor=None) -> None:
        from streamre.server.app import StreamServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.call(lambda: _construct(StreamServer, config, load_extractor))
        self.call(self.server.start)
        self.call(lambda: asyncio.wait_for(self.server.engine.ready.wait(), 60))
        self.port = self.server.port

    def call(self, make_coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(make_coro(), self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.call(self.server.shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _construct(cls, config, load_extractor):
    return cls(config, load_extractor)  # the server's asyncio objects belong to this loop


@pytest.fixture
def make_server(fact_checkpoint, tmp_path):
    servers: list[LiveServer] = []

    def make(load_extractor=None, **settings) -> LiveServer:
        # No text model unless a test asks for one: the bundled one is not needed here.
        config = replace(ServeConfig(port=0, model=str(fact_checkpoint), speech_facts="speech",
                                     text_model="none",
                                     data_dir=str(tmp_path / "data"), gather_ms=5), **settings)
        server = LiveServer(config, load_extractor)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def text_checkpoint(tmp_path_factory) -> Path:
    """A tiny text extractor trained with `streamre train-text`'s own code (a few seconds, real
    gradient steps) to find the facts of TEXT_SENTENCES: seeded, on one thread, and trained on
    until its dev score (its own sentences) is perfect, in at most MAX_ROUNDS rounds."""
    import json

    from streamre.training.seeding import fixed_threads
    from streamre.training.text import TextTrainConfig, train_text

    folder = tmp_path_factory.mktemp("text")
    source = folder / "sentences.json"
    source.write_text(json.dumps(spert_items()))
    out = folder / "model"
    encoder = tiny_encoder(folder / "encoder")
    with fixed_threads(FIXTURE_THREADS):
        for round_ in range(1, MAX_ROUNDS + 1):
            result = train_text(TextTrainConfig(
                train=str(source), dev=str(source), out=str(out), encoder=str(encoder),
                epochs=30 * round_, batch_size=3, lr=3e-3, head_lr=3e-3, warmup=0.05,
                resume=round_ > 1))
            if result["dev"]["RTE"]["f1"] == 1.0:
                return out
    pytest.fail(f"the text checkpoint reached dev RTE {result['dev']['RTE']} after "
                f"{30 * MAX_ROUNDS} epochs")
