"""One seed for every generator a training draws from: Python's `random`, numpy's global
generator and torch's. `train`, `train-text` and the tests' small trainings all seed here, so
a run does not depend on what ran before it in the same process."""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """torch's CPU thread count set for the block, then given back: sums split over threads
    round differently, so a small training is repeatable only on a fixed count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
