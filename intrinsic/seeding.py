"""Deterministic, device-independent random streams derived from one user seed.

Every random tensor of a projection is drawn from a CPU ``torch.Generator`` whose seed is
derived from (user seed, stream name, indices) by NumPy's ``SeedSequence`` hashing. Hence:
the same seed gives bit-identical projections on every device and in every process, the
streams of different chunks and different user seeds are statistically independent, and
values never depend on how much memory a call may use.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, stream: str, *indices: int) -> int:
    """A 63-bit seed for the random stream ``stream[indices]`` of user seed ``seed``."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    entropy = [int(seed), zlib.crc32(stream.encode()), *(int(i) for i in indices)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def generator(seed: int, stream: str, *indices: int) -> torch.Generator:
    """A CPU generator for the random stream ``stream[indices]`` of user seed ``seed``."""
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, stream, *indices))
