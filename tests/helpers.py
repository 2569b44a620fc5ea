"""Helpers shared by the tests: speech, the fact the tests' checkpoint hears, a client of the
streaming protocol, HTTP, and the `streamre` command in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamre.mqtt.mirror_store import MirrorStore
from streamre.protocol import start_message, stop_message

FACT = ("David Chen", "Work_For", "World Bank")
FACT_TEXT = "David Chen works for the World Bank."


def noise(seconds: float, seed: int) -> np.ndarray:
    """Seeded white noise, 16 kHz int16: sound the fact checkpoint answers with its fact."""
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 2000).astype(np.int16)


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (./dev.sh test installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True)
    return path


# Two voices of different engines on one microphone: a flite man and an espeak-ng woman.
VOICE_ONE, VOICE_OTHER = "flite:kal16", "espeak:en-us+f3:s160:p70"
VOICE_SENTENCES = ["The budget review moves to Thursday after the board meeting.",
                   "Please send the contract to the legal team before noon.",
                   "Our office in Lisbon opens next month with twelve people.",
                   "I will call the supplier about the delayed shipment tomorrow."]


@functools.lru_cache(maxsize=None)
def voice_says(spec: str, sentence: int) -> np.ndarray:
    """VOICE_SENTENCES[sentence] in voice `spec`, 16 kHz int16."""
    from streamre.corpus.voices import parse_voice

    return parse_voice(spec).render(VOICE_SENTENCES[sentence])


def shared_microphone(turns: list[tuple[str, int]]) -> np.ndarray:
    """The turns ((voice, sentence)) one after another, a second of silence around each."""
    silence = np.zeros(16000, np.int16)
    return np.concatenate([silence, *[part for spec, i in turns
                                      for part in (voice_says(spec, i), silence)]])


def send_json(url: str, body: bytes, content_type: str = "application/json",
              method: str = "POST"):
    """(status, JSON answer) of a request with a body, errors included."""
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def http_get(url: str, headers: dict | None = None):
    """(status, headers (looked up case-insensitively), body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def pcm_frames(audio: np.ndarray, rate: int, ms: int = 100) -> list[bytes]:
    step = rate * ms // 1000
    return [audio[i:i + step].astype("<i2").tobytes() for i in range(0, len(audio), step)]


def wire(message: dict) -> str:
    return json.dumps(message)


def start_text(room: str = "default", rate: int = 16000, **extra) -> str:
    return wire(start_message(room, rate, **extra))


async def receive_all(ws, timeout: float = 60) -> list[dict]:
    """Every message until the server closes the connection."""
    messages = []
    try:
        async with asyncio.timeout(timeout):
            async for m in ws:
                messages.append(json.loads(m))
    except ConnectionClosed:
        pass
    return messages


async def stream(url: str, audio: np.ndarray, rate: int = 16000, room: str = "default",
                 frames: list[bytes] | None = None, **start) -> tuple[list[dict], int]:
    async with connect(url, max_size=None) as ws:  # a snapshot may be large
        await ws.send(start_text(room, rate, **start))
        for frame in frames if frames is not None else pcm_frames(audio, rate):
            await ws.send(frame)
        await ws.send(wire(stop_message()))
        messages = await receive_all(ws)
    return messages, ws.close_code


SPEAKING_FRAME_S = 0.1


async def speak(url: str, audio: np.ndarray, room: str, pace: float = 1.0,
                speaker: str = "Ana") -> list[dict]:
    """Stream `audio` as a person speaks it, at `pace` times real time, then stop; every
    message the producer got."""
    async with connect(url, max_size=None) as ws:
        await ws.send(start_text(room, speaker=speaker))
        messages: list[dict] = []

        async def read():
            async for m in ws:
                messages.append(json.loads(m))

        reader = asyncio.create_task(read())
        for frame in pcm_frames(audio, 16000, int(SPEAKING_FRAME_S * 1000)):
            await ws.send(frame)
            await asyncio.sleep(SPEAKING_FRAME_S / pace)
        await ws.send(wire(stop_message()))
        await asyncio.wait_for(reader, 120)
    return messages


def of_type(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


STREAMRE = [sys.executable, "-m", "streamre"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*STREAMRE, *args], capture_output=True, text=True, timeout=timeout)


def start_server(*args: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([*STREAMRE, "serve", "--port", "0", *args],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if match := re.search(r"listening on http://[\d.]+:(\d+)/", line):
            port = int(match.group(1))
            break
        if not line and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
    else:
        raise AssertionError("server did not start")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return process, port
        except OSError:
            time.sleep(0.1)
    raise AssertionError("healthz never turned 200")


# -- a tiny text extractor, made here ---------------------------------------------------------

TEXT_SENTENCES = {  # text: (entities as (text, type), relations as (head, relation, tail))
    FACT_TEXT: ([("David Chen", "Peop"), ("World Bank", "Org")], [FACT]),
    "Maria Lopez lives in Boston.": ([("Maria Lopez", "Peop"), ("Boston", "Loc")],
                                     [("Maria Lopez", "Live_In", "Boston")]),
    "The weather was fine.": ([], []),
}


def spert_items() -> list[dict]:
    """TEXT_SENTENCES in SpERT JSON, the format `streamre train-text` reads."""
    items = []
    for text, (entities, relations) in TEXT_SENTENCES.items():
        tokens = text[:-1].split() + ["."]
        spans = []
        for name, kind in entities:
            words = name.split()
            start = next(i for i in range(len(tokens)) if tokens[i:i + len(words)] == words)
            spans.append({"type": kind, "start": start, "end": start + len(words)})
        names = [name for name, _ in entities]
        items.append({"tokens": tokens, "entities": spans, "relations": [
            {"type": r, "head": names.index(h), "tail": names.index(t)} for h, r, t in relations]})
    return items


def tiny_encoder(folder: Path) -> Path:
    """A one-layer BERT and a word-piece tokenizer learnt from TEXT_SENTENCES, saved the way
    a hub model is (what `--encoder` reads)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from streamre.training.seeding import seed_everything

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] is id 0
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(list(TEXT_SENTENCES) * 5, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    seed_everything(0)  # the same weights whatever ran before
    BertModel(BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64),
              add_pooling_layer=False).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


# -- a real MQTT broker -----------------------------------------------------------------------

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto on a port of its own, with persistence, restartable on the same port."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        if not shutil.which(MOSQUITTO):
            pytest.fail("mosquitto is not installed (./dev.sh test installs it)")
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        (folder / "store").mkdir(exist_ok=True)
        # Run as root, mosquitto drops to user "mosquitto", which cannot write the test's folder:
        # naming the current user keeps the persistence file writable.
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                               f"user {getpass.getuser()}\n"
                               f"persistence true\npersistence_location {folder / 'store'}/\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Subscriber:
    def __init__(self, url: str, room: str, db: Path) -> None:
        self.args = [sys.executable, "-m", "streamre", "subscribe", "--mqtt", url, "--room", room,
                     "--db", str(db)]
        self.db = db
        self.process = subprocess.Popen(self.args, stderr=subprocess.PIPE, text=True)
        self.subscribed = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:  # also keeps the pipe drained
        for line in self.process.stderr:
            if "subscribed to" in line:
                self.subscribed.set()

    def wait_subscribed(self, timeout: float = 30.0) -> None:
        assert self.subscribed.wait(timeout), "the subscriber never subscribed"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(20) == 0

    def lines(self, room: str) -> list[tuple[str, int, str]]:
        """(session, segment, text) of the transcript lines it kept, in the order said."""
        if not self.db.exists():
            return []
        store = MirrorStore(self.db)
        try:
            return [(s.session_id, s.segment_id, s.text) for s in store.transcript(room)]
        finally:
            store.close()

    def graph(self, room: str) -> dict | None:
        if not self.db.exists():
            return None
        store = MirrorStore(self.db)
        try:
            return store.load(room).to_json() if room in store.rooms() else None
        finally:
            store.close()


# -- a real Chromium ---------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"]


@contextlib.contextmanager
def viewer_page(server, room: str, servers: list[str] = ()):
    """A headless Chromium page viewing `room`, ready; it fails the test if the page threw.
    `server` is what serves the page (its `http`); `servers`, if given, the WebSocket URLs
    the page may fail over between (`?servers=`). `page.open_viewer()` opens one more viewer
    of the room in the same browser."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    query = f"?room={room}&viewer=1" + (f"&servers={','.join(servers)}" if servers else "")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.open_viewer = lambda: _open(browser.new_page(), errors, server, room, query)
            yield _open(page, errors, server, room, query)
        finally:
            browser.close()
    assert not errors, errors


def _open(page, errors: list[str], server, room: str, query: str):
    """`page` viewing `room`, ready; `page.open_viewer()` opens one more (same browser)."""
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.http}/{query}")
    page.wait_for_function("document.querySelector('#state').textContent"
                           f".includes('viewing room {room}')", timeout=20000)
    return page
