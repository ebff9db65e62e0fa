"""Fastfood's random diagonals and permutation as pure functions of (seed, block, index).

Every random number of a Fastfood block is a counter-based hash, so any backend can regenerate
it anywhere, in any order, with no stored state: the GPU kernel (``intrinsic.kernels.fastfood``)
computes the same numbers in registers, and this module is the PyTorch reference it is tested
against. The hash constants below are the only copy: the kernel imports them. All arithmetic is
on unsigned 32-bit integers (held in int64 tensors here; only the low 32 bits are kept, which is
exact because the low bits of a sum or product do not depend on overflow).

Scheme ``counter32-v3`` (:data:`SCHEME`). With S = :func:`seed_key` (seed), for entry j:

* sign:      B_j = +1 if mix(S ⊕ mix(j + SIGN_SALT)) is even else −1. One B for all blocks: the
             blocks stay independent given B (each has its own G_b and Π_b), and H B θ_d is then
             computed once per product instead of once per block.

and for block ``b`` (numbered across the whole projection) of size L = 2^k and its entry j:

* key:       K_b = mix(S ⊕ mix(b + BLOCK_SALT))
* one hash per pair of entries:  h_k = mix(K_b ⊕ (k · ENTRY_MULTIPLIER mod 2^32))
* Gaussians: both Box–Muller outputs of h_k (float32),
             G_2k = R_k cos(2π u2),  G_2k+1 = R_k sin(2π u2),  R_k = √(−2 ln u1),  with
             u1 = (2^16 − ⌊h_k / 2^16⌋) / 2^16 ∈ (0, 1]                          (bits 16–31)
             u2 = (h_k mod 2^16) / 2^16 ∈ [0, 1)                                 (bits 0–15)
  (a block of one entry keeps G_0 = R_0 cos(2π u2)). The two outputs of one draw are
  independent standard normals, so every G_j is N(0, 1) and the entries are independent up to
  the 16-bit grid; |G_j| ≤ √(32 ln 2) ≈ 4.71: the tail beyond it has probability 2.5·10⁻⁶.
* permutation π: two rounds of  x ↦ x' ⊕ (x' ≫ s),  x' = (a_r x + c_r) mod 2^k,  s = ⌈k/2⌉,
  on k-bit integers with a_r odd. Both steps are bijections of [0, 2^k) (the xor-shift with
  2s ≥ k is its own inverse), so π is one; π⁻¹ undoes the rounds in reverse with a_r⁻¹ mod 2^32
  (Newton's iteration). Round constants: a_r = mix(P_b + 2r) | 1, c_r = mix(P_b + 2r + 1),
  P_b = mix(K_b ⊕ PERMUTATION_SALT).

A shared B, one hash and one logarithm per two entries, and a two-round bijection whose constants
are computed once per block (:func:`stream_table`) keep the GPU kernel's instructions per output
entry within its memory time (see ``intrinsic.kernels.resources``). ``mix`` is Chris Wellons'
``lowbias32`` integer finaliser.
"""

from __future__ import annotations

import math

import torch

SCHEME = "counter32-v3"  # recorded in every Fastfood config: which random numbers a seed means
MASK32 = 0xFFFFFFFF
MIX_SHIFT_1, MIX_MULTIPLIER_1, MIX_SHIFT_2, MIX_MULTIPLIER_2, MIX_SHIFT_3 = 16, 0x7FEB352D, 15, 0x846CA68B, 16
SEED_SALT = 0x9E3779B9
BLOCK_SALT = 0x632BE5AB
SIGN_SALT = 0x27D4EB2F
ENTRY_MULTIPLIER = 0x9E3779B1  # odd (golden ratio · 2^32): j ↦ j·M is a bijection of uint32
PERMUTATION_SALT = 0x5BD1E995
ROUNDS = 2


def mix32(x):
    """The lowbias32 finaliser on uint32 values (Python int, or an int64 tensor of values < 2^32)."""
    x = x & MASK32
    x = x ^ (x >> MIX_SHIFT_1)
    x = (x * MIX_MULTIPLIER_1) & MASK32
    x = x ^ (x >> MIX_SHIFT_2)
    x = (x * MIX_MULTIPLIER_2) & MASK32
    return x ^ (x >> MIX_SHIFT_3)


def seed_key(seed: int) -> int:
    """A 32-bit key from a seed of any size (Python int ≥ 0)."""
    return mix32(mix32(seed & MASK32) ^ mix32(((seed >> 32) + SEED_SALT) & MASK32))


def block_keys(seed: int, first_block: int, count: int) -> torch.Tensor:
    """K_b for blocks first_block … first_block + count − 1, int64 tensor of shape (count,)."""
    blocks = torch.arange(first_block, first_block + count, dtype=torch.int64)
    return mix32(seed_key(seed) ^ mix32(blocks + BLOCK_SALT))


def signs(seed: int, L: int) -> torch.Tensor:
    """B_0 … B_{L−1} (int8 ±1), shared by every block of size ≤ L (a block of size L′ uses the first L′)."""
    j = torch.arange(L, dtype=torch.int64)
    return (1 - 2 * (mix32(seed_key(seed) ^ mix32(j + SIGN_SALT)) & 1)).to(torch.int8)


def pair_hashes(keys: torch.Tensor, pairs: int) -> torch.Tensor:
    """h_k, k < ``pairs``, of each block: int64 values < 2^32, shape (count, pairs)."""
    k = torch.arange(pairs, dtype=torch.int64)
    return mix32(keys[:, None] ^ ((k * ENTRY_MULTIPLIER) & MASK32))


def gaussians(keys: torch.Tensor, L: int) -> torch.Tensor:
    """G of each block (float32, not normalised): shape (count, L)."""
    h = pair_hashes(keys, max(L // 2, 1))
    u1 = (65536 - (h >> 16)).to(torch.float32) * 2.0**-16
    u2 = (h & 0xFFFF).to(torch.float32) * 2.0**-16
    radius = torch.sqrt((-2.0 * math.log(2.0)) * torch.log2(u1))
    angle = (2 * math.pi) * u2
    pairs = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=2)
    return pairs.reshape(len(keys), -1)[:, :L]


def round_constants(keys: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(a_r, c_r)] of each block's permutation rounds, each of shape (count,)."""
    p = mix32(keys ^ PERMUTATION_SALT)
    return [(mix32(p + 2 * r) | 1, mix32(p + 2 * r + 1)) for r in range(ROUNDS)]


def stream_table(seed: int, first_block: int, count: int) -> torch.Tensor:
    """Each block's constants as one row (int64 values < 2^32), shape (count, 1 + 3·ROUNDS):
    K_b, then a_r, c_r of each round, then a_r⁻¹ mod 2^32 of each round."""
    keys = block_keys(seed, first_block, count)
    rounds = round_constants(keys)
    columns = [keys, *(v for a, c in rounds for v in (a, c)), *(inverse_mod_2_32(a) for a, _ in rounds)]
    return torch.stack(columns, dim=1)


def inverse_mod_2_32(a):
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
    mask, shift = L - 1, (k + 1) // 2
    x = torch.arange(L, dtype=torch.int64).expand(len(keys), L)
    rounds = round_constants(keys)
    if not inverse:
        for a, c in rounds:
            x = (a[:, None] * x + c[:, None]) & mask
            x = x ^ (x >> shift)
        return x
    for a, c in reversed(rounds):
        x = x ^ (x >> shift)
        x = (inverse_mod_2_32(a)[:, None] * ((x - c[:, None]) & mask)) & mask
    return x
