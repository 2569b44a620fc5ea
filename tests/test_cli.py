"""The command line as users run it: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request


from helpers import FACT, FACT_TEXT, STREAMRE, run, start_server

def test_extract_prints_one_json_line_per_segment(fact_checkpoint, meeting_wav, tmp_path):
    result = run("extract", str(meeting_wav), "--model", str(fact_checkpoint), "--speech-facts",
                 "speech")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["segment_id"] for line in lines] == [0, 1]
    for line in lines:
        assert line["file"] == str(meeting_wav) and line["start"] < line["end"]
        assert [(t["head"], t["relation"], t["tail"]) for t in line["triplets"]] == [FACT]
        assert line["text"] == FACT_TEXT
    # The segmenter takes serve's own VAD settings: a shorter longest segment splits more.
    split = run("extract", str(meeting_wav), "--model", str(fact_checkpoint), "--speech-facts",
                "speech", "--vad-max-utterance-s", "1")
    assert split.returncode == 0, split.stderr
    pieces = [json.loads(line) for line in split.stdout.splitlines()]
    assert len(pieces) > len(lines) and any(p["forced_split"] for p in pieces)
    assert all(p["end"] - p["start"] <= 1.0 + 1e-3 for p in pieces)

    (tmp_path / "junk.wav").write_bytes(b"not audio")
    bad = run("extract", str(tmp_path / "junk.wav"), "--model", str(fact_checkpoint),
              "--speech-facts", "speech")
    assert bad.returncode != 0 and "cannot read audio" in bad.stderr and not bad.stdout


def test_errors_are_one_line_and_non_zero(tmp_path, capsys):
    # As a process: a bad setting is one line on stderr and exit status 2 ...
    result = run("serve", "--max-sessions", "zero")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "max_sessions" in result.stderr
    # ... and the same entry point in this process for the rest (an interpreter each is slow).
    from streamre.cli.main import main

    def refused(*argv: str) -> tuple[int, str]:
        status = main(list(argv))
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0, err  # one line
        return status, err

    status, err = refused("extract", "x.wav", "--model", str(tmp_path / "no-model"),
                          "--speech-facts", "speech")
    assert status == 2 and "cannot load model" in err
    status, err = refused("extract", "x.wav", "--speech-facts", "text", "--text-model", "none")
    assert status == 2 and "needs a text model" in err
    status, err = refused("extract", "x.wav", "--asr", str(tmp_path / "no-whisper"))
    assert status == 2 and "--asr" in err
    (tmp_path / "long.txt").write_text("Priya Natarajan\n" + "x" * 65 + "\n")
    for command in ("extract", "eval", "serve"):
        target = {"extract": ["x.wav"], "eval": ["--data", "m.jsonl"], "serve": []}[command]
        for vocabulary, says in ((tmp_path / "none.txt", "No such file"),
                                 (tmp_path / "long.txt", "long.txt: phrase 1 has 65 characters")):
            status, err = refused(command, *target, "--vocabulary", str(vocabulary))
            assert status == 2 and says in err, err
    status, err = refused("extract", "x.wav", "--speech-facts", "speech", "--vocabulary",
                          str(tmp_path / "long.txt"))
    assert status == 2 and "speech model" in err


def test_extract_hears_names_from_a_vocabulary_file_or_a_context_file(tmp_path):
    from test_default_model import speak

    import soundfile

    text = "Our contact at Heineken is Wojciech Zielinski."
    soundfile.write(tmp_path / "named.wav", speak(text, tmp_path / "raw.wav"), 16000)
    (tmp_path / "names.txt").write_text("Wojciech Zielinski\nHeineken\nPriya Natarajan\n")
    (tmp_path / "invite.txt").write_text("Hi all, Wojciech Zielinski of Heineken joins us.\n")
    for given in (["--vocabulary", str(tmp_path / "names.txt")],
                  ["--context", str(tmp_path / "invite.txt")]):
        result = run("extract", str(tmp_path / "named.wav"), *given)
        assert result.returncode == 0, result.stderr
        heard = " ".join(json.loads(line)["text"] for line in result.stdout.splitlines())
        assert "Our contact at Heineken is Wojciech Zielinski" in heard, (given, heard)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    bad = run("extract", str(tmp_path / "named.wav"), "--context", str(tmp_path / "bad.txt"))
    assert bad.returncode == 2 and "context" in bad.stderr and "UTF-8" in bad.stderr


def test_serve_fails_fast_when_the_model_cannot_load(tmp_path):
    result = run("serve", "--port", "0", "--model", str(tmp_path / "no-model"), "--speech-facts", "speech",
                 "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1 and "could not be loaded" in result.stderr


def test_serve_stream_and_sigterm(fact_checkpoint, meeting_wav, utterance_wav, tmp_path):
    server, port = start_server("--model", str(fact_checkpoint), "--speech-facts", "speech",
                                "--data-dir", str(tmp_path / "d"))
    url = f"ws://127.0.0.1:{port}/v1/stream"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"streamre" in r.read()
        result = run("stream", str(meeting_wav), "--url", url, "--room", "cli")
        assert result.returncode == 0, result.stderr
        messages = [json.loads(line) for line in result.stdout.splitlines()]
        assert messages[0]["type"] == "ready" and messages[-1] == {"type": "done"}
        assert len([m for m in messages if m["type"] == "triplets"]) == 2

        # SIGTERM while a real-time stream is open: the stream still gets its answer and `done`.
        client = subprocess.Popen([*STREAMRE, "stream", str(utterance_wav), "--url", url,
                                   "--realtime"], stdout=subprocess.PIPE, text=True)
        first = client.stdout.readline()
        assert json.loads(first)["type"] == "ready"
        time.sleep(1.2)  # inside the utterance
        server.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in client.stdout.read().splitlines()]
        assert client.wait(30) == 0
        assert rest[-1] == {"type": "done"}
        assert [m["triplets"][0]["head"] for m in rest if m["type"] == "triplets"] == [FACT[0]]
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.stderr.close()


def test_default_model_is_bundled():
    from streamre.model import DEFAULT_ALIGNED_MODEL, resolve_model

    folder = resolve_model("")
    assert folder.endswith(DEFAULT_ALIGNED_MODEL) and os.path.isfile(folder + "/model.safetensors")
