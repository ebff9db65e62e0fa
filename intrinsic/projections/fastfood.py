"""Fastfood projection (Le, Sarlós & Smola 2013): blocks V_b = H·G_b·Π_b·H·B.

One block of size L (a power of two) maps x ∈ R^L to V x, with B a random ±1 diagonal, H the
unnormalised Walsh–Hadamard matrix, Π a random permutation ((Πv)_k = v_{π(k)}) and G a
Gaussian diagonal. B is shared by the blocks (each block keeps its own G_b and Π_b, so blocks
are independent given B), which lets every backend compute H B θ_d once per product. Every column
of H G Π H B has norm exactly √(L·ΣG²), so G is stored divided
by that: each block has unit-norm columns, and every entry has expected square 1/L. Entries of
segment i are then multiplied by √(L/N_i) (N_i per the normalisation, see ``base``).

Two block layouts, a named option recorded with every result:

* ``"stacked"`` (default; the textbook layout): θ_d is zero-padded to L = 2^⌈log₂ d⌉ (or a
  larger ``block_size``), and ⌈D/L⌉ independent blocks are stacked to cover the flat vector,
  the last one truncated. Cost O(D log d) per product; each block fits one GPU thread block
  for d ≤ 4096 (float32).
* ``"per_tensor"`` (the reference Intrinsic-SAID code): one block per tensor of n_i entries,
  of size L_i = 2^⌈log₂ max(n_i, d)⌉, truncated to n_i entries. Taking L_i ≥ d is how we handle
  d larger than a tensor's padded size: every entry of θ_d reaches every tensor (the reference
  code silently dropped θ_d beyond L_i). Cost O(Σ L_i log L_i).

Random state: every sign, Gaussian and permutation entry is a counter-based hash of (seed,
block, index) (``fastfood_random``), so no backend has to store it. Two backends compute the
same P (option ``backend`` or ``$INTRINSIC_FASTFOOD_BACKEND``):

* ``"triton"``: the one-pass kernels in ``intrinsic/kernels/fastfood.py``, which
  regenerate G_b and Π_b in registers: O(L) memory beyond the output (the signs). Chosen by
  ``"auto"`` for CUDA tensors when Triton has what the kernels use, every block is within the
  kernel's cap for the dtype (``max_block_size``: 2^12 in float32, 2^11 in float64), and a first
  launch per (device, block size, dtype) ran and agreed with PyTorch. A kernel that fails to
  compile or launch, then or later, warns once and that case computes with PyTorch.
* ``"torch"``: chunked PyTorch. It materialises the state on first use and keeps it
  (permutation int16/int32, normalised G float32: 6 bytes per covered entry, and the L signs,
  ``state_nbytes()``), trading memory for speed on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..hadamard import hadamard_transform
from ..notices import warn_once
from . import fastfood_random
from .base import Projection, next_power_of_two

LAYOUTS = ("stacked", "per_tensor")
BACKENDS = ("auto", "triton", "torch")
BACKEND_ENV_VAR = "INTRINSIC_FASTFOOD_BACKEND"
RANDOM_SCHEME = fastfood_random.SCHEME  # recorded in config(): which random numbers a seed means
WORK_CHUNK_ELEMENTS = 1 << 22  # entries transformed at once in matvec / rmatvec

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
        self._kernel_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._origins_cache: tuple | None = None
        self._slot_bounds: dict[tuple[torch.device, int], torch.Tensor] = {}
        self._block_tables: dict[tuple[torch.device, int], tuple] = {}
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
        """Materialise the per-block state for the torch backend (the kernels regenerate it instead)."""
        perms, gauss = [], []
        for group in self.groups:
            L = group.block_size
            per_chunk = max(1, WORK_CHUNK_ELEMENTS // L)
            for first in range(0, group.count, per_chunk):
                count = min(per_chunk, group.count - first)
                keys = fastfood_random.block_keys(self.seed, group.first_block + first, count)
                perm = fastfood_random.permutation(keys, L)
                perms.append(perm.to(torch.int16 if L <= 2**15 else torch.int32))
                g = fastfood_random.gaussians(keys, L)
                # Unit-norm columns: ‖H G Π H B e_j‖² = L·ΣG² for unnormalised H.
                gauss.append(g / (L * g.square().sum(1, keepdim=True)).sqrt())
        flat = lambda parts: torch.cat([p.reshape(-1) for p in parts]).to(device)  # noqa: E731
        self.register_buffer("permutation", flat(perms), persistent=False)
        self.register_buffer("gauss", flat(gauss), persistent=False)

    def _signs(self, L: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """B_0 … B_{L−1}, shared by every block (see ``fastfood_random``), as ``dtype`` on ``device``."""
        largest = max(group.block_size for group in self.groups)
        if getattr(self, "signs", None) is None or self.signs.device != device:
            self.register_buffer("signs", fastfood_random.signs(self.seed, largest).to(device), persistent=False)
        return self.signs[:L].to(dtype)

    def _shared_input(self, theta_d: torch.Tensor, L: int) -> torch.Tensor:
        """u = H B θ_d (θ_d zero-padded to L): the part of every block's product they share."""
        x = theta_d.new_zeros(L)
        x[: self.d] = theta_d
        return hadamard_transform(x.mul_(self._signs(L, theta_d.dtype, theta_d.device)))

    def _shared_output(self, v: torch.Tensor, L: int) -> torch.Tensor:
        """(B H v)[:d]: the adjoint of :meth:`_shared_input`."""
        return (hadamard_transform(v) * self._signs(L, v.dtype, v.device))[: self.d]

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
        """(permutation as int64, scaled G) of blocks [first, first + count), shape (count, L)."""
        L = group.block_size
        if getattr(self, "gauss", None) is None:
            self._draw_state(self._device)
        begin = group.state_offset + first * L
        span, shape = slice(begin, begin + count * L), (count, L)
        return self.permutation[span].view(shape).long(), self.gauss[span].view(shape).to(dtype)

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

    # ------------------------------------------------------------------ dispatch
    def resolve_backend(self, x: torch.Tensor) -> str:
        """The backend that computes with ``x``: ``"triton"`` or ``"torch"`` (see module doc).

        The kernel is used only where it can run: CUDA (or the interpreter), a Triton with the
        features it needs, float32/float64, blocks within the kernel's cap for that dtype, and a
        first launch per (device, block size, dtype) that ran and agreed with PyTorch. Anything else
        warns once and computes with PyTorch.
        """
        requested = self.backend if self.backend != "auto" else os.environ.get(BACKEND_ENV_VAR, "auto")
        if requested not in BACKENDS:
            raise ValueError(f"${BACKEND_ENV_VAR}={requested!r}; choose one of {BACKENDS}")
        if requested == "torch" or (requested == "auto" and x.device.type != "cuda"):
            return "torch"
        from .. import kernels

        reason = kernels.unavailable_reason(x.device)
        if reason is None and x.dtype not in (torch.float32, torch.float64):
            reason = f"the kernel computes in float32/float64, not {x.dtype}"
        if reason is None:
            from ..kernels.fastfood import max_block_size

            largest = max(g.block_size for g in self.groups)
            if largest > max_block_size(x.dtype):
                reason = f"blocks of {largest} entries exceed the kernel's {max_block_size(x.dtype)} in {x.dtype}"
        if reason is not None:
            warn_once(f"Fastfood backend 'triton' is not usable: {reason}; using 'torch'.")
            return "torch"
        for block_size in sorted({g.block_size for g in self.groups}):
            case = _kernel_case(x.device, block_size, x.dtype)
            if not kernels.usable(case, lambda size=block_size: _probe_kernel(x.device, size, x.dtype)):
                return "torch"
        return "triton"

    def _kernel_failed(self, x: torch.Tensor, error: BaseException) -> None:
        from .. import kernels

        for block_size in sorted({g.block_size for g in self.groups}):
            kernels.disable(_kernel_case(x.device, block_size, x.dtype), error)

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(segment starts + sentinel, int64 (m + 1,); normalisation scales, float32 (m,)) on ``device``."""
        if device not in self._kernel_tables:
            from ..kernels.fastfood import SEGMENT_SENTINEL

            starts = torch.tensor([start for start, _, _ in self._segment_ranges] + [SEGMENT_SENTINEL])
            scales = torch.tensor([scale for _, _, scale in self._segment_ranges], dtype=torch.float32)
            self._kernel_tables[device] = (starts.to(device), scales.to(device))
        return self._kernel_tables[device]

    def _kernel_args(self, group: BlockGroup, scales: torch.Tensor) -> dict:
        """Kernel arguments for all rows of ``group``, segment i scaled by ``scales[i]``."""
        return dict(tables=self._group_tables(group, scales.device), block_size=group.block_size,
                    group_offset=group.offset, row_begin=group.offset, row_end=group.offset + group.length,
                    segment_starts=self._tables(scales.device)[0], segment_scales=scales)

    def _group_tables(self, group: BlockGroup, device: torch.device):
        """``block_tables`` of ``group`` on ``device`` (computed once: one norm launch)."""
        key = (device, group.first_block)
        if key not in self._block_tables:
            from ..kernels.fastfood import block_tables

            self._block_tables[key] = block_tables(
                seed=self.seed, block_size=group.block_size, first_block=group.first_block, group_offset=group.offset,
                group_rows=group.length, segment_starts=self._tables(device)[0])
        return self._block_tables[key]

    def _segment_slots(self, group: BlockGroup, device: torch.device) -> torch.Tensor:
        """``segment_slot_bounds`` of ``group``'s transpose launch on ``device`` (computed once)."""
        key = (device, group.first_block)
        if key not in self._slot_bounds:
            from ..kernels.fastfood import segment_slot_bounds

            starts = [start for start, _, _ in self._segment_ranges]
            end = group.offset + group.length
            bounds = segment_slot_bounds(starts, group.block_size, group.offset, group.offset, end)
            self._slot_bounds[key] = bounds.to(device)
        return self._slot_bounds[key]

    def _base_origins(self, bases: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """int64 (m,) offsets with θ₀ of row r in segment i at ``bases[0].view(-1)[origin_i + r]``,
        or None when the tensors cannot be addressed from ``bases[0]`` (mixed dtypes or devices)."""
        first = bases[0]
        if any(b.dtype != first.dtype or b.device != first.device or not b.is_contiguous() for b in bases):
            return None
        key = (first.device, tuple(b.data_ptr() for b in bases))
        if self._origins_cache is None or self._origins_cache[0] != key:
            size = first.element_size()
            distances = [b.data_ptr() - first.data_ptr() for b in bases]
            if any(distance % size for distance in distances):
                return None
            starts = [start for start, _, _ in self._segment_ranges]
            pairs = zip(distances, starts, strict=True)
            origins = torch.tensor([distance // size - start for distance, start in pairs])
            self._origins_cache = (key, origins.to(first.device))
        return self._origins_cache[1]

    # ------------------------------------------------------------------ products
    def add_to(self, theta_d: torch.Tensor, bases, scales: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[θ₀_i + λ_i (P θ_d)_i]; on the kernel backend one fused launch per block group.

        The kernel path reads each θ₀_i once and writes θ_i once into one flat buffer (the
        tensors returned are views of it). Its backward receives that buffer's gradient and
        consumes it with one transpose launch per block group, recomputing Pθ_d in registers
        for λ's gradient, so nothing of size D is saved between forward and backward.
        """
        origins = self._base_origins(bases) if self.resolve_backend(theta_d) == "triton" else None
        if origins is not None:
            flat = self._on_kernel(theta_d, lambda: _FusedFastfoodUpdate.apply(theta_d, scales, self, origins, *bases))
            if flat is not None:
                return [t.view(b.shape) for t, b in zip(flat.split(self.segment_sizes), bases, strict=True)]
        return super().add_to(theta_d, bases, scales)

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        if self.resolve_backend(theta_d) == "triton":
            out = self._on_kernel(theta_d, lambda: self._matvec_kernel(theta_d))
            if out is not None:
                return out
        return self._matvec_torch(theta_d)

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        if self.resolve_backend(grad) == "triton":
            out = self._on_kernel(grad, lambda: self._rmatvec_kernel(grad))
            if out is not None:
                return out
        return self._rmatvec_torch(grad)

    def _on_kernel(self, x: torch.Tensor, compute):
        """``compute()``, or None after disabling this projection's kernel cases if it raised."""
        try:
            return compute()
        except Exception as error:  # a kernel that fails to compile or launch: PyTorch instead
            self._kernel_failed(x, error)
            return None

    def _matvec_kernel(self, theta_d: torch.Tensor) -> torch.Tensor:
        from ..kernels.fastfood import fastfood_forward

        out = theta_d.new_empty(self.D)
        norm = self._tables(theta_d.device)[1]
        for group in self.groups:
            rows = out[group.offset : group.offset + group.length]
            fastfood_forward(self._shared_input(theta_d, group.block_size), rows,
                             **self._kernel_args(group, norm))
        return out

    def _rmatvec_kernel(self, grad: torch.Tensor, scales: torch.Tensor | None = None,
                        shared_inputs: list[torch.Tensor] | None = None, dtype: torch.dtype | None = None):
        """Σ_i Pᵢᵀ(scale_i g_i) in ``dtype`` (default g's; scales default: the normalisation);
        with ``shared_inputs`` (u = H B θ_d of each group, from the forward) also the (m,)
        float64 dots Σ_{r ∈ i} g_r (Pθ_d)_r / scale_r."""
        from ..kernels.fastfood import fastfood_transpose

        grad = grad.contiguous()
        scales = self._tables(grad.device)[1] if scales is None else scales
        dtype = dtype or grad.dtype
        result = grad.new_zeros(self.d, dtype=dtype)
        dots = torch.zeros(len(self.segment_sizes), dtype=torch.float64, device=grad.device)
        for index, group in enumerate(self.groups):
            rows = grad[group.offset : group.offset + group.length]
            if shared_inputs is None:
                v = fastfood_transpose(rows, dtype=dtype, **self._kernel_args(group, scales))
            else:
                v, group_dots = fastfood_transpose(rows, dtype=dtype, u=shared_inputs[index],
                                                   segment_slots=self._segment_slots(group, grad.device),
                                                   **self._kernel_args(group, scales))
                dots += group_dots
            result += self._shared_output(v, group.block_size)
        return result if shared_inputs is None else (result, dots)

    def _matvec_torch(self, theta_d: torch.Tensor) -> torch.Tensor:
        out = theta_d.new_empty(self.D)
        for group in self.groups:
            u = self._shared_input(theta_d, group.block_size)
            for first, count, start, stop in self._chunks(group):
                perm, gauss = self._state(group, first, count, theta_d.dtype)
                z = hadamard_transform(u[perm].mul_(gauss))  # H G Π u, one row per block
                out[start:stop] = z.view(-1)[: stop - start]
                self._scale_rows_(out[start:stop], start)
        return out

    def _rmatvec_torch(self, grad: torch.Tensor) -> torch.Tensor:
        out = grad.new_zeros(self.d)
        for group in self.groups:
            L = group.block_size
            v = grad.new_zeros(L)
            for first, count, start, stop in self._chunks(group):
                perm, gauss = self._state(group, first, count, grad.dtype)
                w = grad.new_zeros(count * L)
                w[: stop - start] = grad[start:stop]
                self._scale_rows_(w[: stop - start], start)
                w = hadamard_transform(w.view(count, L)).mul_(gauss)  # G H w
                v += torch.empty_like(w).scatter_(1, perm, w).sum(0)  # Σ over blocks of Πᵀ (·)
            out += self._shared_output(v, L)
        return out

    def config(self) -> dict:
        cfg = {**super().config(), "layout": self.layout, "random": RANDOM_SCHEME}
        if self.layout == "stacked":
            cfg["block_size"] = self.groups[0].block_size
        return cfg


class _FusedFastfoodUpdate(torch.autograd.Function):
    """θ = θ₀ + λ ⊙ s ⊙ z as one flat (D,) tensor in θ₀'s dtype, z the unscaled Fastfood output
    (kernel path; λ_i and the normalisation s_i are constant over segment i).

    Backward: grad θ_d = Σ_i Pᵢᵀ(λ_i s_i g_i) and grad λ_i = s_i Σ_{r ∈ i} g_r z_r, with z
    recomputed inside the transpose kernel rather than stored. A kernel that fails in the
    backward is disabled and the same gradients are computed with PyTorch.
    """

    @staticmethod
    def forward(ctx, theta_d, scales, projection: FastfoodProjection, origins, *bases):
        theta_d = theta_d.contiguous()
        norm = projection._tables(theta_d.device)[1].to(theta_d.dtype)
        combined = norm if scales is None else norm * scales.detach().to(theta_d.dtype)
        shared_inputs = [projection._shared_input(theta_d, group.block_size) for group in projection.groups]
        ctx.projection = projection
        ctx.save_for_backward(theta_d, scales, norm, combined, *shared_inputs)
        return _fused_forward(projection, shared_inputs, combined, bases, origins)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        theta_d, scales, norm, combined, *shared_inputs = ctx.saved_tensors
        projection: FastfoodProjection = ctx.projection
        want_scales = scales is not None and ctx.needs_input_grad[1]
        result = projection._on_kernel(
            theta_d, lambda: projection._rmatvec_kernel(grad, combined, shared_inputs if want_scales else None,
                                                        dtype=theta_d.dtype))
        if result is None:
            result = _torch_backward(projection, grad, combined, theta_d, want_scales)
        grad_theta, grad_scales = result if want_scales else (result, None)
        if grad_scales is not None:
            grad_scales = (norm.double() * grad_scales).to(scales.dtype)
        return (grad_theta, grad_scales, None, None, *([None] * (len(ctx.needs_input_grad) - 4)))


def _fused_forward(projection: FastfoodProjection, shared_inputs, combined, bases, origins) -> torch.Tensor:
    """θ₀ + combined ⊙ z as one flat (D,) tensor in θ₀'s dtype: one launch per block group
    (``shared_inputs``: u = H B θ_d of each group; ``origins``: ``projection._base_origins(bases)``)."""
    from ..kernels.fastfood import fastfood_forward

    out = torch.empty(projection.D, dtype=bases[0].dtype, device=bases[0].device)
    for u, group in zip(shared_inputs, projection.groups, strict=True):
        fastfood_forward(u, out[group.offset : group.offset + group.length],
                         base=bases[0], base_origins=origins, **projection._kernel_args(group, combined))
    return out


def _torch_backward(projection: FastfoodProjection, grad, combined, theta_d, want_scales):
    """The fused update's gradients computed with the PyTorch backend (the kernel's fallback)."""
    grad = grad.to(theta_d.dtype)
    scale_rows = torch.repeat_interleave(combined / projection._tables(grad.device)[1].to(combined.dtype),
                                         torch.tensor(projection.segment_sizes, device=grad.device))
    grad_theta = projection._rmatvec_torch(grad * scale_rows)
    if not want_scales:
        return grad_theta
    norms = projection._tables(grad.device)[1].to(theta_d.dtype)
    z = projection._matvec_torch(theta_d) / torch.repeat_interleave(
        norms, torch.tensor(projection.segment_sizes, device=grad.device))
    dots = torch.stack([part.double().sum() for part in (grad * z).split(projection.segment_sizes)])
    return grad_theta, dots


def _kernel_case(device: torch.device, block_size: int, dtype: torch.dtype) -> tuple:
    return ("fastfood", str(device), block_size, str(dtype).replace("torch.", ""))


def _probe_kernel(device: torch.device, block_size: int, dtype: torch.dtype) -> None:
    """Compile and launch the fused forward and the transpose for one (block size, dtype) on a
    two-segment problem that spans two blocks, and compare them with PyTorch; raise on any error."""
    d = min(3, block_size)
    sizes = [block_size // 2 + 1, block_size] if block_size > 1 else [1, 1]
    P = FastfoodProjection(d, sizes, seed=1, block_size=block_size, backend="triton").to(device)
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(d, dtype=dtype, generator=generator).to(device)
    bases = [torch.randn(n, dtype=dtype, generator=generator).to(device) for n in sizes]
    grad = torch.randn(P.D, dtype=dtype, generator=generator).to(device)
    lam = torch.tensor([0.5, 2.0], dtype=dtype, device=device)
    norm = P._tables(device)[1].to(dtype)
    shared_inputs = [P._shared_input(theta, block_size)]
    fused = _fused_forward(P, shared_inputs, norm * lam, bases, P._base_origins(bases))
    pt_g, dots = P._rmatvec_kernel(grad, norm * lam, shared_inputs)
    rows_lam = torch.repeat_interleave(lam, torch.tensor(sizes, device=device))
    expected_fused = torch.cat(bases) + rows_lam * P._matvec_torch(theta)
    expected_pt_g, expected_dots = _torch_backward(P, grad, norm * lam, theta, True)
    for name, got, expected in (("forward", fused, expected_fused), ("transpose", pt_g, expected_pt_g),
                                ("segment dots", dots, expected_dots)):
        error = ((got.double() - expected.double()).abs().max() / expected.double().abs().max().clamp_min(1e-12)).item()
        if not error < 1e-3:
            raise ArithmeticError(f"the {name} kernel disagrees with PyTorch (relative error {error:.3g})")
