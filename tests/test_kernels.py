"""The Triton kernels in intrinsic/kernels/, run on the CPU interpreter (TRITON_INTERPRET=1, set in conftest).

They must compute exactly what the PyTorch reference computes: the same integers (permutations,
bit for bit), Gaussians to float32 rounding, the same Hadamard transform, and a
Fastfood projection equal to the torch backend's. Tolerances: float32 results within 1e-5
relative to the largest entry, float64 within 1e-6 (the Gaussians are float32 in both backends
and differ by a few ulps between libm and Triton's log/cos).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

pytest.importorskip("triton")
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from intrinsic import (
    hadamard_transform,  # noqa: E402
    kernels,  # noqa: E402
)
from intrinsic.hadamard import available_backends, sylvester_matrix  # noqa: E402
from intrinsic.kernels import fastfood as fastfood_kernels  # noqa: E402
from intrinsic.kernels import interpreting  # noqa: E402
from intrinsic.kernels.fastfood import (  # noqa: E402
    SEGMENT_SENTINEL,
    _gaussians,
    _permuted_index,
    _stream,
    block_tables,
    fastfood_forward,
)
from intrinsic.kernels.hadamard import hadamard_rows  # noqa: E402
from intrinsic.notices import warn_once  # noqa: E402
from intrinsic.projections import FastfoodProjection, fastfood_random  # noqa: E402

from .conftest import tiny_bert_classifier, token_batch  # noqa: E402
from .test_projections import ODD_SEGMENTS  # noqa: E402

pytestmark = [
    pytest.mark.kernels,
    pytest.mark.skipif(not (torch.cuda.is_available() or interpreting()), reason="needs a GPU or TRITON_INTERPRET=1"),
    # Under the interpreter, arithmetic on memory a kernel should not have read (out of a tensor's
    # bounds) tends to show up as NumPy's invalid-value warning: make it fail the test.
    pytest.mark.filterwarnings("error:invalid value encountered:RuntimeWarning"),
]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@triton.jit
def _random_streams_probe(ints_ptr, gauss_ptr, streams_ptr, LOG_L: tl.constexpr, INVERSE: tl.constexpr):
    L: tl.constexpr = 1 << LOG_L
    block = tl.program_id(0)
    j = tl.arange(0, L)
    perm = _permuted_index(streams_ptr, block, j.to(tl.uint32), LOG_L, INVERSE)
    tl.store(ints_ptr + block * L + j, perm.to(tl.int64))
    tl.store(gauss_ptr + block * L + j, _gaussians(_stream(streams_ptr, block, 0), LOG_L))


@pytest.mark.parametrize("log_l", [0, 1, 4, 9])
@pytest.mark.parametrize("inverse", [False, True])
def test_kernel_random_streams_equal_the_reference(log_l, inverse):
    L, blocks, seed, first = 1 << log_l, 3, 2**40 + 17, 5
    ints = torch.zeros(blocks, L, dtype=torch.int64, device=DEVICE)
    gauss = torch.zeros(blocks, L, dtype=torch.float32, device=DEVICE)
    starts = torch.tensor([0, SEGMENT_SENTINEL], device=DEVICE)
    tables = block_tables(seed=seed, block_size=L, first_block=first, group_offset=0, group_rows=blocks * L,
                          segment_starts=starts)
    _random_streams_probe[(blocks,)](ints, gauss, tables.streams, LOG_L=log_l, INVERSE=inverse)
    keys = fastfood_random.block_keys(seed, first, blocks)
    assert torch.equal(ints.cpu(), fastfood_random.permutation(keys, L, inverse=inverse))
    # The GPU computes log2, cos and sin with one hardware instruction each: ≤ 2^-21 relative.
    reference = fastfood_random.gaussians(keys, L)
    assert (gauss.cpu() - reference).abs().max() < 1e-5
    assert torch.allclose(tables.norms.cpu(), 1 / (L * reference.double().square().sum(1)).sqrt().float(), rtol=1e-5)


@pytest.mark.parametrize("L", [1, 2, 16, 1024, 1 << 15])
def test_reference_permutation_is_a_bijection_with_its_inverse(L):
    keys = fastfood_random.block_keys(3, 0, 4)
    forward, inverse = fastfood_random.permutation(keys, L), fastfood_random.permutation(keys, L, inverse=True)
    identity = torch.arange(L).expand(4, L)
    assert torch.equal(forward.sort(1).values, identity)
    assert torch.equal(torch.gather(forward, 1, inverse), identity)
    if L >= 16:
        assert not torch.equal(forward[0], forward[1])  # blocks get different permutations
        assert (forward[0] != torch.arange(L)).float().mean() > 0.5


def test_reference_permutation_scrambles_order():
    # Two affine + xor-shift rounds: neighbours land far apart and rank order is not kept.
    L = 4096
    perm = fastfood_random.permutation(fastfood_random.block_keys(1, 0, 8), L).double()
    ranks = torch.arange(L, dtype=torch.float64)
    for row in perm:
        assert abs(torch.corrcoef(torch.stack([row, ranks]))[0, 1]) < 4 / L**0.5
        assert (row.diff().abs() == 1).double().mean() < 0.01  # consecutive inputs rarely stay adjacent


def test_reference_gaussians_and_signs_have_the_intended_statistics():
    gauss = fastfood_random.gaussians(fastfood_random.block_keys(0, 0, 256), 1024)
    signs = fastfood_random.signs(0, gauss.numel())
    n = gauss.numel()
    assert abs(signs.float().mean()) < 4 / n**0.5
    assert abs(gauss.mean()) < 4 / n**0.5 and abs(gauss.var() - 1) < 4 * (2 / n) ** 0.5
    assert abs((gauss**4).mean() - 3) < 0.1  # Gaussian kurtosis, not uniform or ±1
    assert torch.corrcoef(torch.stack([signs.float().flatten(), gauss.flatten()]))[0, 1].abs() < 4 / n**0.5


@pytest.mark.parametrize("n", [1, 2, 64, 1024])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_hadamard_equals_the_explicit_matrix(n, dtype):
    x = torch.randn(3, 2, n, dtype=dtype, generator=torch.Generator().manual_seed(n)).to(DEVICE)
    expected = x @ sylvester_matrix(n, dtype, DEVICE)
    got = hadamard_transform(x, backend="triton")
    assert relative_error(got, expected) < (1e-6 if dtype == torch.float32 else 1e-12)


def test_triton_hadamard_split_path_for_long_rows():
    # Rows longer than one program are transformed as H_a ⊗ H_b; a limit of 2^3 reaches that path.
    x = torch.randn(2, 64, dtype=torch.float64, device=DEVICE)
    expected = x @ sylvester_matrix(64, torch.float64, DEVICE)
    assert relative_error(hadamard_rows(x, max_log=3), expected) < 1e-12
    with pytest.raises(ValueError, match="n ≤ 2\\^6"):
        hadamard_rows(torch.zeros(1, 128, dtype=torch.float64, device=DEVICE), max_log=3)


def test_triton_is_dispatched_first_on_cuda_and_only_when_forced_on_cpu():
    names = available_backends(DEVICE)
    assert names[0 if DEVICE == "cuda" else -1] == "triton" and "torch" in names
    # agreement of every available backend: tests/test_hadamard.py


def test_triton_hadamard_is_differentiable():
    x = torch.randn(2, 32, dtype=torch.float64, device=DEVICE, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: hadamard_transform(t, backend="triton"), (x,))


CASES = {
    "stacked, global": dict(d=40, layout="stacked"),
    "stacked, per-tensor scale": dict(d=40, layout="stacked", normalization="per_tensor"),
    "stacked, d a power of two, big block": dict(d=64, layout="stacked", block_size=256),
    "per-tensor layout": dict(d=100, layout="per_tensor"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fastfood_kernel_equals_the_torch_backend(case, dtype):
    options = CASES[case]
    kernel = FastfoodProjection(segment_sizes=ODD_SEGMENTS, seed=7, backend="triton", **options).to(DEVICE)
    reference = FastfoodProjection(segment_sizes=ODD_SEGMENTS, seed=7, backend="torch", **options).to(DEVICE)
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(kernel.d, dtype=dtype, generator=g).to(DEVICE)
    grad = torch.randn(kernel.D, dtype=dtype, generator=g).to(DEVICE)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-6
    assert relative_error(kernel.matvec(theta), reference.matvec(theta)) < tolerance
    assert relative_error(kernel.rmatvec(grad), reference.rmatvec(grad)) < tolerance
    # The kernel keeps only the shared signs (L bytes); the torch backend keeps 6 bytes an entry.
    assert kernel.state_nbytes() <= max(g.block_size for g in kernel.groups) < reference.state_nbytes()


def test_fastfood_kernel_is_an_exact_adjoint_and_passes_gradcheck():
    P = FastfoodProjection(6, [5, 30, 1, 7], seed=3, backend="triton").to(DEVICE)  # few blocks: fast to interpret
    x = torch.randn(P.d, dtype=torch.float64, device=DEVICE)
    y = torch.randn(P.D, dtype=torch.float64, device=DEVICE)
    assert abs(torch.dot(P.matvec(x), y) - torch.dot(x, P.rmatvec(y))) < 1e-10 * y.norm() * x.norm()
    theta = torch.zeros(P.d, dtype=torch.float64, device=DEVICE, requires_grad=True)
    weights = torch.randn(P.D, dtype=torch.float64, device=DEVICE)
    assert torch.autograd.gradcheck(lambda t: (P(t) * weights).sum() + P(t).square().sum(), (theta,))


def test_fastfood_kernel_reads_theta0_through_the_origin_table():
    # Three tensors at unrelated places in one storage, read where they lie: θ₀_i of row r is
    # base[origin_i + r]; a launch over rows [7, 300) writes exactly those rows.
    P = FastfoodProjection(40, [50, 200, 100], seed=5, backend="triton").to(DEVICE)
    storage = torch.randn(1000, device=DEVICE)
    bases = [storage[600:650], storage[10:210], storage[300:400]]
    origins = P._base_origins(bases)
    assert origins.tolist() == [0, 10 - 600 - 50, 300 - 600 - 250]
    theta = torch.randn(P.d, device=DEVICE)
    norm = P._tables(theta.device)[1]
    out = torch.empty(293, device=DEVICE)
    args = {**P._kernel_args(P.groups[0], norm), "row_begin": 7, "row_end": 300}
    fastfood_forward(P._shared_input(theta, 64), out, base=storage[600:], base_origins=origins, **args)
    assert relative_error(out, (torch.cat(bases) + P.matvec(theta))[7:300]) < 1e-6


def test_wrapper_trains_identically_on_both_backends(monkeypatch):
    from intrinsic import SubspaceWrapper

    losses, grads = {}, {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("INTRINSIC_FASTFOOD_BACKEND", backend)
        # One 2^12 block per 4k parameters: few programs, which is what the interpreter pays for.
        wrapper = SubspaceWrapper(tiny_bert_classifier(), d=64, said=True, seed=11, block_size=1 << 12).to(DEVICE)
        with torch.no_grad():
            wrapper.theta_d.normal_(generator=torch.Generator(DEVICE).manual_seed(0))
        loss = wrapper(input_ids=token_batch().to(DEVICE), labels=torch.tensor([0, 1, 1], device=DEVICE)).loss
        loss.backward()
        losses[backend], grads[backend] = loss.item(), torch.cat([p.grad for p in wrapper.trainable_parameters()])
    assert abs(losses["torch"] - losses["triton"]) < 1e-5
    assert relative_error(grads["triton"], grads["torch"]) < 1e-4


def test_an_unusable_kernel_backend_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    warn_once.cache_clear()
    P = FastfoodProjection(8, [100], backend="triton")
    with pytest.warns(RuntimeWarning, match="Fastfood backend 'triton' is not usable") as caught:
        first = P.matvec(torch.ones(8))
        P.matvec(torch.ones(8))
    assert len([w for w in caught if "Fastfood backend" in str(w.message)]) == 1
    expected = FastfoodProjection(8, [100], backend="torch").matvec(torch.ones(8))
    assert torch.equal(first, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FastfoodProjection(8, [100]).resolve_backend(torch.ones(8)) == "torch"  # auto on CPU: silent


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_larger_than_the_kernel_cap_of_their_dtype_fall_back_to_torch(dtype):
    warn_once.cache_clear()
    cap = fastfood_kernels.max_block_size(dtype)
    x = torch.ones(1, dtype=dtype, device=DEVICE)
    assert FastfoodProjection(cap, [3 * cap], backend="triton").resolve_backend(x) == "triton"
    P = FastfoodProjection(cap + 1, [3 * cap], backend="triton")
    with pytest.warns(RuntimeWarning, match="exceed the kernel"):
        assert P.resolve_backend(x) == "torch"


def test_unknown_backend_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown Fastfood backend 'cuda'"):
        FastfoodProjection(8, [100], backend="cuda")
    monkeypatch.setenv("INTRINSIC_FASTFOOD_BACKEND", "fast")
    with pytest.raises(ValueError, match="INTRINSIC_FASTFOOD_BACKEND='fast'"):
        FastfoodProjection(8, [100]).matvec(torch.ones(8))


@pytest.mark.parametrize("layout", ["stacked", "per_tensor"])
def test_fused_update_equals_the_generic_one_with_gradients(layout):
    # add_to on the kernel: θ_i = θ₀_i + λ_i (Pθ_d)_i per tensor in one pass, and its backward
    # (per-tensor transposes, λ's gradient from a recomputed z) against autograd through torch.
    shapes = [(5,), (3, 100), (1,), (7, 11), (1030,)]
    kwargs = dict(d=40, segment_sizes=[math.prod(s) for s in shapes], seed=9, layout=layout)
    kernel = FastfoodProjection(backend="triton", **kwargs).to(DEVICE)
    reference = FastfoodProjection(backend="torch", **kwargs).to(DEVICE)
    g = torch.Generator().manual_seed(2)
    bases = [torch.randn(s, dtype=torch.float64, generator=g).to(DEVICE) for s in shapes]
    weights = [torch.randn(s, dtype=torch.float64, generator=g).to(DEVICE) for s in shapes]
    results = {}
    for name, P in (("kernel", kernel), ("torch", reference)):
        theta = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(DEVICE)
        scales = torch.linspace(0.5, 2, len(shapes), dtype=torch.float64, device=DEVICE)
        theta.requires_grad_(), scales.requires_grad_()
        outs = P.add_to(theta, bases, scales)
        loss = sum((o * w).sum() + o.square().sum() for o, w in zip(outs, weights, strict=True))
        loss.backward()
        results[name] = (torch.cat([o.flatten() for o in outs]), theta.grad, scales.grad)
        assert [o.shape for o in outs] == [b.shape for b in bases]
    for got, expected in zip(results["kernel"], results["torch"], strict=True):
        assert relative_error(got, expected) < 1e-6


def test_fused_update_passes_gradcheck_and_keeps_the_base_dtype():
    P = FastfoodProjection(6, [5, 30, 1, 7], seed=4, backend="triton").to(DEVICE)
    bases = [torch.randn(n, dtype=torch.float64, device=DEVICE) for n in (5, 30, 1, 7)]
    theta = torch.randn(6, dtype=torch.float64, device=DEVICE, requires_grad=True)
    scales = torch.rand(4, dtype=torch.float64, device=DEVICE, requires_grad=True)
    weights = [torch.randn(n, dtype=torch.float64, device=DEVICE) for n in (5, 30, 1, 7)]

    def loss(t, s):  # a scalar: one backward per gradcheck evaluation keeps the interpreter fast
        return sum((o * w).sum() + o.square().sum() for o, w in zip(P.add_to(t, bases, s), weights, strict=True))

    assert torch.autograd.gradcheck(loss, (theta, scales))
    half = [b.to(torch.bfloat16) for b in bases]
    assert all(o.dtype == torch.bfloat16 for o in P.add_to(theta.float().detach(), half, None))


@triton.jit
def _kernel_that_does_not_compile(*args, LOG_L: tl.constexpr, HAS_BASE: tl.constexpr, FIXUP: tl.constexpr):
    tl.static_assert(LOG_L < 0, "an injected compile error")


class _FailingLauncher:
    """Stands in for a compiled kernel whose launch fails (as a CUDA launch error would)."""

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            raise RuntimeError("injected launch failure")

        return launch


@pytest.fixture
def fresh_cases():
    kernels.reset_cases()
    yield
    kernels.reset_cases()


def test_a_kernel_that_fails_to_compile_warns_once_and_pytorch_computes(monkeypatch, fresh_cases):
    monkeypatch.setattr(fastfood_kernels, "_forward_kernel", _kernel_that_does_not_compile)
    P = FastfoodProjection(8, [100, 30], seed=2, backend="triton").to(DEVICE)
    theta = torch.randn(8, device=DEVICE)
    with pytest.warns(RuntimeWarning, match="Triton kernel for .*fastfood.* failed") as caught:
        first = P.matvec(theta)
        P.matvec(theta)
        outs = P.add_to(theta, [torch.zeros(100, device=DEVICE), torch.zeros(30, device=DEVICE)], None)
    assert len([w for w in caught if "Triton kernel" in str(w.message)]) == 1
    expected = FastfoodProjection(8, [100, 30], seed=2, backend="torch").to(DEVICE).matvec(theta)
    assert torch.equal(first, expected) and torch.allclose(torch.cat(outs), expected)
    assert list(kernels.disabled_cases()) == [("fastfood", str(torch.device(DEVICE)), 8, "float32")]


def test_a_kernel_that_fails_at_launch_in_the_backward_still_gives_the_gradients(monkeypatch, fresh_cases):
    # The probe passes; the transpose then fails mid-training: the step finishes on PyTorch.
    shapes = [(5,), (3, 10), (7,)]
    kwargs = dict(d=6, segment_sizes=[math.prod(s) for s in shapes], seed=3)
    bases = [torch.randn(s, dtype=torch.float64, device=DEVICE) for s in shapes]
    grads = {}
    for backend in ("triton", "torch"):
        P = FastfoodProjection(backend=backend, **kwargs).to(DEVICE)
        theta = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(DEVICE)
        scales = torch.linspace(0.5, 2, 3, dtype=torch.float64, device=DEVICE)
        theta.requires_grad_(), scales.requires_grad_()
        outs = P.add_to(theta, bases, scales)
        if backend == "triton":
            monkeypatch.setattr(fastfood_kernels, "_transpose_kernel", _FailingLauncher())
            with pytest.warns(RuntimeWarning, match="injected launch failure"):
                sum(o.square().sum() for o in outs).backward()
        else:
            sum(o.square().sum() for o in outs).backward()
        grads[backend] = (theta.grad, scales.grad)
    for got, expected in zip(grads["triton"], grads["torch"], strict=True):
        assert relative_error(got, expected) < 1e-6  # the forward ran on the kernel: float32 Gaussians


def test_a_bert_base_shaped_training_step_launches_at_most_ten_kernels(monkeypatch, fresh_cases):
    # BERT-base's 12 layers and 201 parameter tensors (hidden size shrunk): launches depend on the
    # tensors and the layout, not on their sizes. Every Fastfood kernel is counted, SAID included.
    from transformers import BertConfig, BertForSequenceClassification

    from intrinsic import SubspaceWrapper

    config = BertConfig(vocab_size=99, hidden_size=8, num_hidden_layers=12, num_attention_heads=2,
                        intermediate_size=8, max_position_embeddings=16, num_labels=2)
    monkeypatch.setenv("INTRINSIC_FASTFOOD_BACKEND", "triton")
    wrapper = SubspaceWrapper(BertForSequenceClassification(config), d=300, said=True, seed=0).to(DEVICE)
    assert len(wrapper.parameter_names) == 201
    with torch.no_grad():
        wrapper.theta_d.normal_(generator=torch.Generator(DEVICE).manual_seed(0))  # λ's gradient is 0 at θ_d = 0
    theta_dtype = wrapper.theta_d.dtype
    wrapper.projection.resolve_backend(torch.ones(1, dtype=theta_dtype, device=DEVICE))  # the probe, not counted
    launches = []
    for name in ("_block_norms_kernel", "_forward_kernel", "_transpose_kernel"):
        kernel = getattr(fastfood_kernels, name)

        class Counting:
            def __getitem__(self, grid, kernel=kernel, name=name):
                launches.append(name)
                return kernel[grid]

        monkeypatch.setattr(fastfood_kernels, name, Counting())
    steps = []
    for _ in range(2):
        launches.clear()
        labels = torch.tensor([0, 1, 1], device=DEVICE)
        loss = wrapper(input_ids=token_batch(vocab=99, length=8).to(DEVICE), labels=labels).loss
        loss.backward()
        steps.append(list(launches))
    # The per-block tables once; then per step the forward over whole single-segment blocks, its
    # fix-up launch for the blocks that hold a tensor boundary, and one transpose.
    assert steps[0] == ["_block_norms_kernel", "_forward_kernel", "_forward_kernel", "_transpose_kernel"]
    assert steps[1] == ["_forward_kernel", "_forward_kernel", "_transpose_kernel"]
    assert max(map(len, steps)) <= 10
    assert wrapper.theta_d.grad.abs().sum() > 0 and wrapper.said_scales.grad.abs().sum() > 0
