"""CTranslate2's `model.bin`, read without CTranslate2: every variable of a converted model as a
torch tensor (`streamre.whisper.weights` maps Whisper's to transformers' names).

The format (binary version 6), little-endian: uint32 version, string spec name, uint32
revision, uint32 variable count; per variable a string name, uint8 rank, rank x uint32 dims,
uint8 dtype, uint32 byte count, the bytes; then uint32 alias count and (alias, target) string
pairs. A string is a uint16 length (NUL included), then its bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

CT2_BINARY_VERSION = 6
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class WhisperImportError(ValueError):
    """A source that is not a usable Whisper model; the message says why in one line."""


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.at = 0
        self.path = path

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise WhisperImportError(f"{self.path}: truncated at byte {len(self.data)} "
                               f"(needed {self.at + n})")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def uint(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.uint("H"))
        if not raw.endswith(b"\0"):
            raise WhisperImportError(f"{self.path}: malformed string at byte {self.at}")
        return raw[:-1].decode("utf-8", errors="replace")


def read_ct2_model(path: str | Path | list[Path]) -> tuple[str, dict[str, torch.Tensor]]:
    """The spec name and every variable of a CTranslate2 `model.bin` (or of its parts, read
    as one in the order given), aliases resolved."""
    paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
    path = paths[0]
    reader = _Reader(b"".join(p.read_bytes() for p in paths), path)
    version = reader.uint("I")
    if version != CT2_BINARY_VERSION:
        raise WhisperImportError(f"{path}: CTranslate2 binary version {version}; this reader knows "
                           f"version {CT2_BINARY_VERSION}")
    spec = reader.string()
    reader.uint("I")  # the spec's revision
    variables: dict[str, torch.Tensor] = {}
    for _ in range(reader.uint("I")):
        name = reader.string()
        shape = [reader.uint("I") for _ in range(reader.uint("B"))]
        dtype_id = reader.uint("B")
        if dtype_id not in CT2_DTYPES:
            raise WhisperImportError(f"{path}: unknown dtype id {dtype_id} for variable {name}")
        raw = reader.take(reader.uint("I"))
        if CT2_DTYPES[dtype_id] == "bfloat16":
            tensor = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16)
        else:
            tensor = torch.from_numpy(np.frombuffer(raw, dtype=CT2_DTYPES[dtype_id]).copy())
        if tensor.numel() != int(np.prod(shape)):
            raise WhisperImportError(f"{path}: variable {name} has {tensor.numel()} values for shape "
                               f"{shape}")
        variables[name] = tensor.reshape(shape)
    for _ in range(reader.uint("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise WhisperImportError(f"{path}: alias {alias} points to a missing variable {target}")
        variables[alias] = variables[target]
    return spec, variables
