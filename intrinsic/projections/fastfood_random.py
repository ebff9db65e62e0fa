"""Fastfood's random diagonals and permutation as pure functions of (seed, block, index).

Every random number of a Fastfood block is a counter-based hash, so any backend can regenerate
it anywhere, in any order, with no stored state: the GPU kernel in ``kernels/`` computes the
same numbers in registers, and this module is the PyTorch reference it is tested against.
All arithmetic is on unsigned 32-bit integers (held in int64 tensors here; only the low 32
bits are kept, which is exact because the low bits of a product do not depend on overflow).

For block ``b`` (numbered across the whole projection) of size L = 2^k and its entry j:

* key:       K_b = mix(S ⊕ mix(b + 0x632BE5AB)), with S = :func:`seed_key` (seed)
* hashes:    h1 = mix(K_b ⊕ mix(2j)),  h2 = mix(K_b ⊕ mix(2j + 1))
* sign:      B_j = +1 if h1 is even else −1
* Gaussian:  G_j = √(−2 ln u1) · cos(2π u2)  (Box–Muller, float32) with
             u1 = (⌊h1 / 2^8⌋ + 1) / 2^24 ∈ (0, 1],  u2 = ⌊h2 / 2^8⌋ / 2^24 ∈ [0, 1)
* permutation π: three rounds of  x ↦ rotl_k((a_r x + c_r) mod 2^k, ⌊k/2⌋)  on k-bit
  integers, with a_r odd. Each step is a bijection of [0, 2^k), so π is one, and its inverse
  undoes the rounds in reverse (a_r⁻¹ mod 2^32 by Newton's iteration). The round constants
  are a_r = mix(P_b + 2r) | 1 and c_r = mix(P_b + 2r + 1) with P_b = mix(K_b ⊕ 0x5BD1E995).

``mix`` is Chris Wellons' ``lowbias32`` integer finaliser.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
BLOCK_SALT = 0x632BE5AB
PERMUTATION_SALT = 0x5BD1E995
ROUNDS = 3


def mix32(x):
    """The lowbias32 finaliser on uint32 values (Python int, or an int64 tensor of values < 2^32)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def seed_key(seed: int) -> int:
    """A 32-bit key from a seed of any size (Python int ≥ 0)."""
    return mix32(mix32(seed & MASK32) ^ mix32(((seed >> 32) + 0x9E3779B9) & MASK32))


def block_keys(seed: int, first_block: int, count: int) -> torch.Tensor:
    """K_b for blocks first_block … first_block + count − 1, int64 tensor of shape (count,)."""
    blocks = torch.arange(first_block, first_block + count, dtype=torch.int64)
    return mix32(seed_key(seed) ^ mix32(blocks + BLOCK_SALT))


def signs_and_gaussians(keys: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B (int8 ±1) and G (float32, not normalised) of each block: shapes (count, L)."""
    j = torch.arange(L, dtype=torch.int64)
    h1 = mix32(keys[:, None] ^ mix32(2 * j))
    h2 = mix32(keys[:, None] ^ mix32(2 * j + 1))
    signs = (1 - 2 * (h1 & 1)).to(torch.int8)
    u1 = ((h1 >> 8) + 1).to(torch.float32) * 2.0**-24
    u2 = (h2 >> 8).to(torch.float32) * 2.0**-24
    gauss = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2 * math.pi) * u2)
    return signs, gauss


def _round_constants(keys: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    p = mix32(keys ^ PERMUTATION_SALT)
    return [(mix32(p + 2 * r) | 1, mix32(p + 2 * r + 1)) for r in range(ROUNDS)]


def _inverse_mod_2_32(a: torch.Tensor) -> torch.Tensor:
    """a⁻¹ mod 2^32 for odd a: Newton's iteration doubles the correct low bits (3 → 48)."""
    inv = a
    for _ in range(4):
        inv = (inv * ((2 - a * inv) & MASK32)) & MASK32
    return inv


def permutation(keys: torch.Tensor, L: int, inverse: bool = False) -> torch.Tensor:
    """π (or π⁻¹) of each block as int64 indices, shape (count, L); (Πv)_j = v_{π(j)}."""
    k = L.bit_length() - 1
    if L != 1 << k:
        raise ValueError(f"block size must be a power of two, got {L}")
    mask, rot = L - 1, k // 2
    x = torch.arange(L, dtype=torch.int64).expand(len(keys), L)
    rounds = _round_constants(keys)
    if not inverse:
        for a, c in rounds:
            x = (a[:, None] * x + c[:, None]) & mask
            x = ((x << rot) | (x >> (k - rot))) & mask
        return x
    for a, c in reversed(rounds):
        x = ((x >> rot) | (x << (k - rot))) & mask
        x = (_inverse_mod_2_32(a)[:, None] * ((x - c[:, None]) & mask)) & mask
    return x
