"""Audio-context fine-tuning (after FUTO's whisper-acft): Whisper's encoder taught, without
labels, to make the decoder behave on a short window as it does on the full 30 s window.

The teacher is the unchanged Whisper hearing a clip zero-padded to 30 s; the student's encoder,
a copy, hears the same clip padded only to its own window (the smallest whole-second window
that holds it, as hearing pads). The decoder, the same frozen one for both, reads what the
teacher itself heard in the clip (its own transcript at 30 s: no label is used), and the loss
is the mean squared difference of the decoder's hidden states, every layer, under the two
encoders: what matters is how the decoder reads the states, not the states themselves (matching
the encoder's states alone lowered that loss and made the words worse). Only the encoder
learns; the decoder, which holds the words, is left as it was, so nothing about words or names
is learnt. A share of the clips is cut at a random point first, as a partial hears an utterance
cut mid-word (then the teacher's transcript of the cut clip is read).

Training is resumable: `out/state.pt` is written every `save_every` steps and a run started
again goes on from it. `out/log.jsonl` has the training loss and the held-out loss (clips of the
training voices set apart, never dev).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from streamre import SAMPLE_RATE
from streamre.audio import read_audio
from streamre.hearing.features import window_log_mel
from streamre.hearing.torch_backend import run_encoder

FULL_WINDOW_S = 30
STATES_PER_SECOND = 50  # the encoder's output frames per second of window
LONGEST_CLIP_S = 20  # longer clips are left out (a segment is at most 15 s by default)


@dataclass(frozen=True)
class AcftConfig:
    whisper: str  # a transformers Whisper folder (`streamre import-whisper`)
    train: str  # a speech manifest (`streamre synth`); only its audio is used
    out: str
    steps: int = 400
    batch: int = 8
    lr: float = 2e-5
    cut_fraction: float = 0.5  # clips cut at a random point first, as a partial hears them
    held_out: int = 48  # clips set apart to watch the loss on
    save_every: int = 25
    seed: int = 39
    threads: int = 2


def own_window(samples: int) -> int:
    """The smallest whole-second window that holds `samples`."""
    return min(FULL_WINDOW_S, max(1, math.ceil(samples / SAMPLE_RATE)))


def acft_loss(student: nn.Module, teacher, clips: Sequence[tuple[np.ndarray, list[int]]]
              ) -> torch.Tensor:
    """The mean squared difference between the frozen decoder's hidden states reading each
    clip's tokens under the student encoder on the clip's own window and under the teacher's
    encoder on the full window, averaged over the clips. `teacher` is the whole Whisper."""
    n_mels = teacher.config.num_mel_bins
    by_window: dict[int, list[int]] = {}
    for i, (w, _) in enumerate(clips):
        by_window.setdefault(own_window(len(w)), []).append(i)
    total = torch.zeros(())
    for window, members in by_window.items():
        waveforms = [clips[i][0] for i in members]
        with torch.no_grad():
            full = run_encoder(teacher.model.encoder, torch.from_numpy(
                window_log_mel(waveforms, FULL_WINDOW_S, n_mels)))
        short = run_encoder(student, torch.from_numpy(window_log_mel(waveforms, window, n_mels)))
        for k, i in enumerate(members):
            ids = torch.tensor([clips[i][1]])
            with torch.no_grad():
                target = _decoder_states(teacher, full[k:k + 1], ids)
            total = total + nn.functional.mse_loss(
                _decoder_states(teacher, short[k:k + 1], ids), target)
    return total / len(clips)


def _decoder_states(model, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    out = model.model.decoder(input_ids=ids, encoder_hidden_states=states,
                              output_hidden_states=True)
    return torch.cat(out.hidden_states[1:], 0)  # the embeddings (layer 0) never differ


def cut(waveform: np.ndarray, rng: random.Random, fraction: float) -> np.ndarray:
    """The clip, or (with probability `fraction`) its first part, at least half a second."""
    if rng.random() >= fraction or len(waveform) <= SAMPLE_RATE:
        return waveform
    return waveform[:rng.randint(SAMPLE_RATE // 2, len(waveform) - 1)]


def train_acft(config: AcftConfig) -> dict:
    """Fine-tune the encoder of `config.whisper` (see the module); returns the last log line."""
    from transformers import WhisperForConditionalGeneration

    from streamre.pretrained import load_pretrained
    from streamre.training.data import read_manifest
    from streamre.training.seeding import seed_everything

    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_pretrained(WhisperForConditionalGeneration, config.whisper).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = load_pretrained(WhisperForConditionalGeneration, config.whisper).model.encoder
    student.embed_positions.weight.requires_grad_(False)
    heard = _TeacherTranscripts(config.whisper)
    audio = [a for a in (read_audio(e.audio) for e in read_manifest(config.train))
             if len(a) <= LONGEST_CLIP_S * SAMPLE_RATE]
    random.Random(config.seed).shuffle(audio)
    held_out = heard(audio[:config.held_out])
    train = audio[config.held_out:]
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad],
                                  lr=config.lr, weight_decay=0.0)
    step, state_file = 0, out / "state.pt"
    if state_file.exists():  # go on where the last run stopped
        state = torch.load(state_file, weights_only=False)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    rng = random.Random(config.seed * 1000 + step)
    line: dict = {}
    with (out / "log.jsonl").open("a") as log:
        if step == 0:
            log.write(json.dumps({"config": asdict(config), "train_clips": len(train)}) + "\n")
            log.write(json.dumps({"step": 0, "held_out": _held_out(student, teacher,
                                                                    held_out)}) + "\n")
        while step < config.steps:
            started = time.monotonic()
            student.train()
            clips = heard([cut(c, rng, config.cut_fraction)
                           for c in rng.sample(train, config.batch)])
            loss = acft_loss(student, teacher, clips)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            line = {"step": step, "loss": round(loss.item(), 6),
                    "seconds": round(time.monotonic() - started, 2)}
            if step % config.save_every == 0 or step == config.steps:
                line["held_out"] = _held_out(student, teacher, held_out)
                torch.save({"student": student.state_dict(), "optimizer":
                            optimizer.state_dict(), "step": step}, state_file)
            log.write(json.dumps(line) + "\n")
            log.flush()
    return line


class _TeacherTranscripts:
    """What the unchanged Whisper hears in each clip at its full 30 s window (CTranslate2, for
    speed), as the decoder's tokens: the text the decoder reads in the loss."""

    def __init__(self, whisper: str) -> None:
        from transformers import AutoTokenizer

        from streamre.hearing import HearingOptions, load_hearing

        self.hearing = load_hearing(whisper, options=HearingOptions(windows_s=(FULL_WINDOW_S,)))
        self.tokenizer = AutoTokenizer.from_pretrained(whisper)

    def __call__(self, waveforms: list[np.ndarray]) -> list[tuple[np.ndarray, list[int]]]:
        texts = [h.text for h in self.hearing.transcribe(waveforms)]
        return [(w, self.tokenizer(" " + t if t else "").input_ids)  # Whisper's leading space
                for w, t in zip(waveforms, texts, strict=True)]


def _held_out(student: nn.Module, teacher, clips: list[tuple[np.ndarray, list[int]]]) -> float:
    student.eval()
    with torch.no_grad():
        return round(sum(acft_loss(student, teacher, clips[i:i + 8]).item()
                         * len(clips[i:i + 8]) for i in range(0, len(clips), 8))
                     / max(1, len(clips)), 6)


def export_acft(whisper: str, state_file: str | Path, out: str | Path) -> Path:
    """A transformers Whisper folder: `whisper` with the student encoder of `state_file`."""
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    from streamre.pretrained import load_pretrained

    model = load_pretrained(WhisperForConditionalGeneration, whisper)
    model.model.encoder.load_state_dict(torch.load(state_file, weights_only=False)["student"])
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(whisper).save_pretrained(out)
    return Path(out)
