"""The shipped default model listens: three new sentences spoken by flite's `slt`, a voice kept
out of its training, come back as their transcripts and their facts."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streamre.audio import read_audio
from streamre.model.metrics import word_error_rate

# Sentences written for this test, in CoNLL04's relations; none is in its data.
SPOKEN = [
    ("Maria Lopez lives in Boston.", ("Maria Lopez", "Live_In", "Boston")),
    ("John Smith works for the World Bank.", ("John Smith", "Work_For", "World Bank")),
    ("Lee Harvey Oswald killed President Kennedy.",
     ("Lee Harvey Oswald", "Kill", "President Kennedy")),
]


@pytest.fixture(scope="module")
def extractor():
    from streamre.inference import ModelExtractor

    return ModelExtractor(None, "cpu")  # the default: the bundled model


def test_the_bundled_default_model_is_the_shipped_one(extractor):
    from streamre.model import DEFAULT_MODEL_NAME

    assert extractor.name == DEFAULT_MODEL_NAME
    assert extractor.model.config.whisper["d_model"] == 384  # Whisper tiny, not a test model


def test_three_unseen_voice_sentences_give_their_transcripts_and_facts(extractor, tmp_path):
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed (./dev.sh test installs it)")
    waves = []
    for i, (text, _) in enumerate(SPOKEN):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        waves.append(read_audio(path))
    answers = extractor.extract(waves)
    for (text, fact), answer in zip(SPOKEN, answers, strict=True):
        assert word_error_rate([answer.text], [text]) == 0.0, (text, answer.text)
        assert fact in [(t.head, t.relation, t.tail) for t in answer.triplets], (fact, answer)
