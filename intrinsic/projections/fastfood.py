"""Fastfood projection (Le, Sarlós & Smola 2013): blocks V = H·G·Π·H·B.

One block of size L (a power of two) maps x ∈ R^L to V x, with B a random ±1 diagonal, H the
unnormalised Walsh–Hadamard matrix, Π a uniform random permutation ((Πv)_k = v_{π(k)}) and G a
Gaussian diagonal. Every column of H G Π H B has norm exactly √(L·ΣG²), so G is stored divided
by that: each block has unit-norm columns, and every entry has expected square 1/L. Entries of
segment i are then multiplied by √(L/N_i) (N_i per the normalisation, see ``base``).

Two block layouts, a named option recorded with every result:

* ``"stacked"`` (default; the textbook layout): θ_d is zero-padded to L = 2^⌈log₂ d⌉ (or a
  larger ``block_size``), and ⌈D/L⌉ independent blocks are stacked to cover the flat vector,
  the last one truncated. Cost O(D log d) per product; each block fits one GPU thread block
  for d ≤ 32768.
* ``"per_tensor"`` (the reference Intrinsic-SAID code): one block per tensor of n_i entries,
  of size L_i = 2^⌈log₂ max(n_i, d)⌉, truncated to n_i entries. Taking L_i ≥ d is how we handle
  d larger than a tensor's padded size: every entry of θ_d reaches every tensor (the reference
  code silently dropped θ_d beyond L_i). Cost O(Σ L_i log L_i).

Random state: every sign, Gaussian and permutation entry is a counter-based hash of (seed,
block, index) (``fastfood_random``), so no backend has to store it. Two backends compute the
same P (option ``backend`` or ``$INTRINSIC_FASTFOOD_BACKEND``):

* ``"triton"``: the one-pass kernels in ``kernels/`` (``intrinsic.kernels.fastfood``), which
  regenerate the state in registers: O(1) memory beyond the output. Chosen by ``"auto"`` for
  CUDA tensors when triton imports and every block has L ≤ 2^15.
* ``"torch"``: chunked PyTorch. It materialises the state on first use and keeps it (signs
  int8, permutation int16/int32, normalised G float32: 7 bytes per covered entry,
  ``state_nbytes()``), trading memory for speed on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..hadamard import _warn_once, hadamard_transform
from . import fastfood_random
from .base import Projection, next_power_of_two

LAYOUTS = ("stacked", "per_tensor")
BACKENDS = ("auto", "triton", "torch")
BACKEND_ENV_VAR = "INTRINSIC_FASTFOOD_BACKEND"
RANDOM_SCHEME = "counter32-v1"  # recorded in config(): which random numbers a seed means
WORK_CHUNK_ELEMENTS = 1 << 22  # entries transformed at once in matvec / rmatvec
KERNEL_MAX_BLOCK = 1 << 15  # largest block the Triton kernel holds in one program



@dataclass(frozen=True)
class BlockGroup:
    """``count`` blocks of size ``block_size`` covering output rows [offset, offset + length)."""

    offset: int
    length: int
    block_size: int
    count: int
    state_offset: int  # where this group's random state starts in the flat state buffers
    first_block: int  # blocks are numbered across groups: the random stream of block b is b's


class FastfoodProjection(Projection):
    name = "fastfood"

    def __init__(
        self,
        d: int,
        segment_sizes: Sequence[int],
        seed: int = 0,
        normalization: str = "global",
        layout: str = "stacked",
        block_size: int | None = None,
        backend: str = "auto",
    ):
        super().__init__(d, segment_sizes, seed, normalization)
        if backend not in BACKENDS:
            raise ValueError(f"unknown Fastfood backend {backend!r}; choose one of {BACKENDS}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown Fastfood layout {layout!r}; choose one of {LAYOUTS}")
        if block_size is not None and (layout != "stacked" or block_size < d or block_size & (block_size - 1)):
            raise ValueError(
                f"block_size={block_size} needs layout='stacked' and a power of two ≥ d={d}"
            )
        self.layout, self.backend = layout, backend
        self.groups = self._plan_groups(block_size)
        block_sizes = self._block_size_per_segment()
        bounds = torch.tensor([0, *self.segment_sizes]).cumsum(0).tolist()
        self._segment_ranges = [
            (bounds[i], bounds[i + 1], (L / self.normalizer(i)) ** 0.5) for i, L in enumerate(block_sizes)
        ]
        self._seed_key = fastfood_random.seed_key(seed)
        self._kernel_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        # An empty buffer that follows .to()/.cuda(), so the lazily drawn state knows its device.
        self.register_buffer("_placement", torch.empty(0), persistent=False)

    def _plan_groups(self, block_size: int | None) -> list[BlockGroup]:
        if self.layout == "stacked":
            L = block_size or next_power_of_two(self.d)
            return [BlockGroup(0, self.D, L, -(-self.D // L), 0, 0)]
        groups, offset, state_offset = [], 0, 0
        for index, n in enumerate(self.segment_sizes):
            L = next_power_of_two(max(n, self.d))
            groups.append(BlockGroup(offset, n, L, 1, state_offset, index))
            offset += n
            state_offset += L
        return groups

    def _block_size_per_segment(self) -> list[int]:
        if self.layout == "stacked":
            return [self.groups[0].block_size] * len(self.segment_sizes)
        return [group.block_size for group in self.groups]

    def _draw_state(self, device: torch.device) -> None:
        """Materialise the state for the torch backend (the kernels regenerate it instead)."""
        signs, perms, gauss = [], [], []
        for group in self.groups:
            L = group.block_size
            per_chunk = max(1, WORK_CHUNK_ELEMENTS // L)
            for first in range(0, group.count, per_chunk):
                keys = fastfood_random.block_keys(self.seed, group.first_block + first, min(per_chunk, group.count - first))
                s, g = fastfood_random.signs_and_gaussians(keys, L)
                signs.append(s)
                perm = fastfood_random.permutation(keys, L)
                perms.append(perm.to(torch.int16 if L <= 2**15 else torch.int32))
                # Unit-norm columns: ‖H G Π H B e_j‖² = L·ΣG² for unnormalised H.
                gauss.append(g / (L * g.square().sum(1, keepdim=True)).sqrt())
        flat = lambda parts: torch.cat([p.reshape(-1) for p in parts]).to(device)  # noqa: E731
        self.register_buffer("signs", flat(signs), persistent=False)
        self.register_buffer("permutation", flat(perms), persistent=False)
        self.register_buffer("gauss", flat(gauss), persistent=False)

    def _chunks(self, group: BlockGroup):
        """Yield (first block, block count, output start, output stop) in chunks of ≤ 2^22 entries.

        Working chunk by chunk keeps every temporary (the int64 permutation, the transforms)
        at O(2^22) entries whatever D is; only the output itself is O(D).
        """
        L = group.block_size
        per_chunk = max(1, WORK_CHUNK_ELEMENTS // L)
        for first in range(0, group.count, per_chunk):
            count = min(per_chunk, group.count - first)
            start = group.offset + first * L
            stop = min(group.offset + group.length, start + count * L)
            yield first, count, start, stop

    def _state(self, group: BlockGroup, first: int, count: int, dtype: torch.dtype):
        """(signs, permutation as int64, scaled G) of blocks [first, first + count), shape (count, L)."""
        L = group.block_size
        if getattr(self, "gauss", None) is None:
            self._draw_state(self._device)
        begin = group.state_offset + first * L
        span, shape = slice(begin, begin + count * L), (count, L)
        return (
            self.signs[span].view(shape),
            self.permutation[span].view(shape).long(),
            self.gauss[span].view(shape).to(dtype),
        )

    def _scale_rows_(self, values: torch.Tensor, start: int) -> torch.Tensor:
        """Multiply ``values`` (output rows start, start+1, …) by their segments' scales."""
        stop = start + values.numel()
        for seg_start, seg_stop, scale in self._segment_ranges:
            lo, hi = max(start, seg_start), min(stop, seg_stop)
            if lo < hi:
                values[lo - start : hi - start].mul_(scale)
        return values

    @property
    def _device(self) -> torch.device:
        return self._placement.device

    def resolve_backend(self, x: torch.Tensor) -> str:
        """The backend that computes with ``x``: ``"triton"`` or ``"torch"`` (see module doc)."""
        requested = self.backend if self.backend != "auto" else os.environ.get(BACKEND_ENV_VAR, "auto")
        if requested not in BACKENDS:
            raise ValueError(f"${BACKEND_ENV_VAR}={requested!r}; choose one of {BACKENDS}")
        if requested == "torch" or (requested == "auto" and x.device.type != "cuda"):
            return "torch"
        from ..kernels import unavailable_reason

        reason = unavailable_reason(x.device)
        if reason is None and max(g.block_size for g in self.groups) > KERNEL_MAX_BLOCK:
            reason = f"blocks of {max(g.block_size for g in self.groups)} entries exceed the kernel's {KERNEL_MAX_BLOCK}"
        if reason is None and x.dtype not in (torch.float32, torch.float64):
            reason = f"the kernel computes in float32/float64, not {x.dtype}"
        if reason is not None:
            _warn_once(f"Fastfood backend 'triton' is not usable: {reason}; using 'torch'.")
            return "torch"
        return "triton"

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(segment starts int64, segment scales float32) on ``device``, for the kernel."""
        if device not in self._kernel_tables:
            starts = torch.tensor([start for start, _, _ in self._segment_ranges], dtype=torch.int64)
            scales = torch.tensor([scale for _, _, scale in self._segment_ranges], dtype=torch.float32)
            self._kernel_tables[device] = (starts.to(device), scales.to(device))
        return self._kernel_tables[device]

    def _kernel_args(self, group: BlockGroup, device: torch.device) -> dict:
        """Kernel arguments for all rows of ``group``, each segment at its normalisation scale."""
        starts, scales = self._tables(device)
        return dict(seed_key=self._seed_key, block_size=group.block_size, first_block=group.first_block,
                    group_offset=group.offset, row_begin=group.offset, row_end=group.offset + group.length,
                    segment_starts=starts, segment_scales=scales)

    def _segment_kernel_args(self, segment: int, scales: torch.Tensor) -> dict:
        """Kernel arguments for the rows of one segment, all at ``scales[segment]``."""
        start, stop, _ = self._segment_ranges[segment]
        group = self.groups[0] if self.layout == "stacked" else self.groups[segment]
        args = self._kernel_args(group, scales.device)
        return {**args, "row_begin": start, "row_end": stop,
                "segment_starts": args["segment_starts"][segment : segment + 1],
                "segment_scales": scales[segment : segment + 1]}

    def add_to(self, theta_d: torch.Tensor, bases, scales: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[θ₀_i + λ_i (P θ_d)_i]; on the kernel backend each tensor is written in one fused pass.

        The kernel path reads each θ₀_i once and writes θ_i once, with no D-sized temporary in
        the forward or the backward (the gradients arrive per tensor and are consumed per tensor).
        """
        if self.resolve_backend(theta_d) != "triton":
            return super().add_to(theta_d, bases, scales)
        return list(_FusedFastfoodUpdate.apply(theta_d, scales, self, *bases))

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        if self.resolve_backend(theta_d) == "triton":
            from ..kernels.fastfood import fastfood_forward

            out, theta_d = theta_d.new_empty(self.D), theta_d.contiguous()
            for group in self.groups:
                rows = out[group.offset : group.offset + group.length]
                fastfood_forward(theta_d, rows, **self._kernel_args(group, theta_d.device))
            return out
        out = theta_d.new_empty(self.D)
        for group in self.groups:
            x = theta_d.new_zeros(group.block_size)
            x[: self.d] = theta_d
            for first, count, start, stop in self._chunks(group):
                signs, perm, gauss = self._state(group, first, count, theta_d.dtype)
                z = hadamard_transform(signs * x)  # H B x, one row per block
                z = hadamard_transform(torch.gather(z, 1, perm).mul_(gauss))  # H G Π (·)
                out[start:stop] = z.view(-1)[: stop - start]
                self._scale_rows_(out[start:stop], start)
        return out

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        if self.resolve_backend(grad) == "triton":
            from ..kernels.fastfood import fastfood_transpose

            grad = grad.contiguous()
            return sum(fastfood_transpose(grad[group.offset : group.offset + group.length], d=self.d,
                                          **self._kernel_args(group, grad.device))
                       for group in self.groups)
        out = grad.new_zeros(self.d)
        for group in self.groups:
            L = group.block_size
            for first, count, start, stop in self._chunks(group):
                signs, perm, gauss = self._state(group, first, count, grad.dtype)
                w = grad.new_zeros(count * L)
                w[: stop - start] = grad[start:stop]
                self._scale_rows_(w[: stop - start], start)
                w = hadamard_transform(w.view(count, L)).mul_(gauss)  # G H w
                w = hadamard_transform(torch.empty_like(w).scatter_(1, perm, w))  # H Πᵀ (·)
                out += w.mul_(signs).sum(0)[: self.d]  # Σ over blocks of B (·)
        return out

    def config(self) -> dict:
        cfg = {**super().config(), "layout": self.layout, "random": RANDOM_SCHEME}
        if self.layout == "stacked":
            cfg["block_size"] = self.groups[0].block_size
        return cfg


class _FusedFastfoodUpdate(torch.autograd.Function):
    """θ_i = θ₀_i + λ_i s_i z_i for every segment i, z = the unscaled Fastfood output (kernel path).

    Backward, per segment: grad θ_d += Pᵢᵀ(λ_i s_i g_i), grad λ_i = s_i Σ g_i z_i, with z
    recomputed inside the transpose kernel rather than stored.
    """

    @staticmethod
    def forward(ctx, theta_d, scales, projection: FastfoodProjection, *bases):
        from ..kernels.fastfood import fastfood_forward

        theta_d = theta_d.contiguous()
        norm = projection._tables(theta_d.device)[1].to(theta_d.dtype)
        combined = norm if scales is None else norm * scales.detach().to(theta_d.dtype)
        outputs = []
        for i, base in enumerate(bases):
            out = torch.empty_like(base)
            fastfood_forward(theta_d, out, base=base.contiguous(), **projection._segment_kernel_args(i, combined))
            outputs.append(out)
        ctx.projection = projection
        ctx.save_for_backward(theta_d, scales, norm, combined)
        return tuple(outputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        from ..kernels.fastfood import fastfood_transpose

        theta_d, scales, norm, combined = ctx.saved_tensors
        projection: FastfoodProjection = ctx.projection
        want_scales = scales is not None and ctx.needs_input_grad[1]
        grad_theta = torch.zeros_like(theta_d)
        grad_scales = torch.zeros_like(norm) if want_scales else None
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            args = projection._segment_kernel_args(i, combined)
            result = fastfood_transpose(grad.contiguous().to(theta_d.dtype), d=projection.d,
                                        theta_d=theta_d if want_scales else None, **args)
            if want_scales:
                result, dot = result
                grad_scales[i] = norm[i] * dot
            grad_theta += result
        if grad_scales is not None:
            grad_scales = grad_scales.to(scales.dtype)
        return (grad_theta, grad_scales, None, *([None] * len(grads)))
