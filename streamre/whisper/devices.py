"""Where a torch model runs and in which number type: one rule for the aligned model, the text
extractor and hearing's torch engine."""

from __future__ import annotations

import torch

DTYPES = ("float32", "bfloat16", "float16")  # torch's names; "auto" picks one per device


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """The weights' type; auto: bfloat16 on a GPU that has it, else float16; float32 on a CPU."""
    if dtype == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}, not {dtype!r}")
    return getattr(torch, dtype)
