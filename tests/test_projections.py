"""Behaviour of every projection: adjointness, gradients, normalisation, seeding, edges."""

import math

import pytest
import torch

from intrinsic.projections import FastfoodProjection, make_projection

# (name, options) for every projection and Fastfood layout.
VARIANTS = [
    ("dense", {}),
    ("sparse", {}),
    ("fastfood", {"layout": "stacked"}),
    ("fastfood", {"layout": "per_tensor"}),
]
IDS = ["dense", "sparse", "fastfood-stacked", "fastfood-per_tensor"]
# Sizes that are not powers of two, one smaller than d, one larger than any block.
ODD_SEGMENTS = [5, 300, 1, 77, 1030]


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
@pytest.mark.parametrize("normalization", ["per_tensor", "global"])
def test_matvec_and_rmatvec_are_adjoint_and_match_the_explicit_matrix(name, options, normalization):
    P = make_projection(name, 20, ODD_SEGMENTS, seed=3, normalization=normalization, **options)
    M = P.to_dense(torch.float64)
    assert M.shape == (sum(ODD_SEGMENTS), 20)
    x, g = torch.randn(20, dtype=torch.float64), torch.randn(P.D, dtype=torch.float64)
    torch.testing.assert_close(P.matvec(x), M @ x)
    torch.testing.assert_close(P.rmatvec(g), M.T @ g)
    torch.testing.assert_close(P.matvec(x).dot(g), x.dot(P.rmatvec(g)))


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_gradcheck_float64(name, options):
    P = make_projection(name, 9, [3, 17, 40], seed=1, **options)
    theta = torch.randn(9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(P, (theta,))


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_float32_matches_float64(name, options):
    P = make_projection(name, 64, [1000, 3000], seed=2, **options)
    x = torch.randn(64, dtype=torch.float64)
    torch.testing.assert_close(P.matvec(x.float()).double(), P.matvec(x), rtol=1e-4, atol=1e-5)


SEGMENTS = [1024, 3000, 5000]  # large enough for tight statistics, not powers of two


def column_slice_sq_norms(M, segments):
    return torch.stack([s.square().sum(0) for s in M.split(segments)])  # (segments, d)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_per_tensor_normalisation_gives_unit_norm_slices(name, options):
    d = 128
    P = make_projection(name, d, SEGMENTS, seed=0, normalization="per_tensor", **options)
    norms = column_slice_sq_norms(P.to_dense(), SEGMENTS)
    # Each slice of each column has expected squared norm 1. The spread of one column's value
    # is √(2/n) for dense and √(1/(s·n)) for sparse (s = 1/√D); we test the mean over d columns.
    spread = 1 / math.sqrt(SEGMENTS[0] / math.sqrt(sum(SEGMENTS)))
    assert (norms.mean(1) - 1).abs().max() < 4 * spread / math.sqrt(d)
    if name != "sparse":
        assert (norms - 1).abs().max() < 0.35


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_global_normalisation_gives_unit_norm_columns(name, options):
    d = 128
    P = make_projection(name, d, SEGMENTS, seed=0, normalization="global", **options)
    norms = P.to_dense().square().sum(0)
    assert abs(norms.mean().item() - 1) < 0.05
    assert (norms - 1).abs().max() < 0.3
    # Per-element scale is the same in every tensor: slice norms are proportional to sizes.
    slices = column_slice_sq_norms(P.to_dense(), SEGMENTS).mean(1)
    torch.testing.assert_close(slices, torch.tensor(SEGMENTS, dtype=torch.float64) / sum(SEGMENTS), rtol=0.15, atol=0)


def test_fastfood_block_columns_are_exactly_unit_norm():
    # One block per tensor of exactly L = n ≥ d entries: no truncation, so norms are exact.
    P = FastfoodProjection(16, [64, 256, 32], seed=5, layout="per_tensor", normalization="per_tensor")
    norms = column_slice_sq_norms(P.to_dense(), [64, 256, 32])
    torch.testing.assert_close(norms, torch.ones_like(norms))
    Q = FastfoodProjection(16, [64, 256, 32], seed=5, layout="stacked", normalization="global")
    torch.testing.assert_close(Q.to_dense().square().sum(0), torch.ones(16, dtype=torch.float64))


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_same_seed_same_projection_different_seed_independent(name, options):
    d = 64
    a = make_projection(name, d, SEGMENTS, seed=11, **options).to_dense()
    b = make_projection(name, d, SEGMENTS, seed=11, **options).to_dense()
    c = make_projection(name, d, SEGMENTS, seed=12, **options).to_dense()
    assert torch.equal(a, b)
    # For independent zero-mean matrices the Frobenius cosine is ≈ N(0, 1/(D·d)).
    cosine = (a * c).sum() / (a.norm() * c.norm())
    assert abs(cosine.item()) < 5 / math.sqrt(a.numel())
    # Columns of one projection are nearly orthogonal too.
    unit = a / a.norm(dim=0)
    gram = unit.T @ unit - torch.eye(d, dtype=unit.dtype)
    assert gram.abs().max() < (0.35 if name == "sparse" else 0.12)


def test_fastfood_layouts_differ_and_are_recorded():
    stacked = FastfoodProjection(40, ODD_SEGMENTS, layout="stacked")
    per_tensor = FastfoodProjection(40, ODD_SEGMENTS, layout="per_tensor")
    assert stacked.config()["layout"] == "stacked" and stacked.config()["block_size"] == 64
    assert per_tensor.config()["layout"] == "per_tensor"
    assert not torch.equal(stacked.to_dense(), per_tensor.to_dense())


def test_fastfood_d_larger_than_a_tensor_reaches_every_tensor_entry():
    # d = 100 exceeds the padded size of the 5-, 1- and 77-entry tensors: every entry of θ_d
    # must still move every tensor (the reference code silently dropped θ_d beyond L_i).
    P = FastfoodProjection(100, ODD_SEGMENTS, layout="per_tensor")
    M = P.to_dense()
    for block in M.split(ODD_SEGMENTS):
        assert (block.abs().sum(0) > 0).all()
    assert P.groups[0].block_size == 128


def test_fastfood_state_is_linear_in_D_not_D_times_d():
    P = FastfoodProjection(1000, [100_000], layout="stacked", backend="torch")
    assert P.state_nbytes() == 0  # drawn on first use, from counters
    P.matvec(torch.ones(1000))
    assert 0 < P.state_nbytes() <= 7 * P.groups[0].count * P.groups[0].block_size
    assert P.state_nbytes() < 8 * 101_000


def test_dense_never_holds_more_than_one_chunk_of_P(monkeypatch):
    import intrinsic.projections.dense as dense

    D, d = 200_000, 100
    P = make_projection("dense", d, [D])
    drawn = []
    original = dense.DenseProjection.chunk_matrix

    def spy(self, index, start, stop, dtype):
        block = original(self, index, start, stop, dtype)
        drawn.append((start, stop, block.numel()))
        return block

    monkeypatch.setattr(dense.DenseProjection, "chunk_matrix", spy)
    P.matvec(torch.ones(d))
    P.rmatvec(torch.ones(D))
    # Each call redraws P chunk by chunk: the chunks tile the D rows once per call, none holds
    # more than 2^22 entries, and nothing is kept between calls.
    rows = [(start, stop) for start, stop, _ in drawn]
    assert len(rows) > 1 and rows[: len(rows) // 2] == rows[len(rows) // 2:]
    tiling = rows[: len(rows) // 2]
    assert tiling[0][0] == 0 and tiling[-1][1] == D
    assert [start for start, _ in tiling[1:]] == [stop for _, stop in tiling[:-1]]
    assert max(numel for *_, numel in drawn) <= dense.CHUNK_ELEMENTS
    assert P.state_nbytes() == 0


def test_sparse_density_and_storage():
    D, d = 40_000, 200
    P = make_projection("sparse", d, [D])
    expected = d * math.sqrt(D)
    assert abs(P.nnz - expected) < 5 * math.sqrt(expected)
    assert P.values.dtype == torch.float32 and P.col_indices.dtype == torch.int32


@pytest.mark.parametrize("d", [0, -3, 2.5, True])
def test_bad_d_is_a_clear_error(d):
    with pytest.raises(ValueError, match="positive integer"):
        make_projection("fastfood", d, [10, 10])


def test_d_larger_than_D_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds the number of parameters"):
        make_projection("dense", 21, [10, 10])


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown projection"):
        make_projection("gaussian", 4, [10])
    with pytest.raises(ValueError, match="unknown Fastfood layout"):
        make_projection("fastfood", 4, [10], layout="rows")
    with pytest.raises(ValueError, match="unknown normalization"):
        make_projection("dense", 4, [10], normalization="unit")
    with pytest.raises(ValueError, match="block_size"):
        make_projection("fastfood", 40, [100], block_size=32)


def test_wrong_input_shape_is_rejected():
    P = make_projection("fastfood", 8, [100])
    with pytest.raises(ValueError, match=r"expected θ_d of shape \(8,\)"):
        P(torch.zeros(9))


# Only the stacked layout has groups of several blocks to split: per_tensor gives each tensor
# one block of its own, which no chunk size divides.
@pytest.mark.parametrize("normalization", ["per_tensor", "global"])
def test_fastfood_chunked_work_gives_the_same_numbers(monkeypatch, normalization):
    import intrinsic.projections.fastfood as fastfood

    P = FastfoodProjection(24, ODD_SEGMENTS, seed=4, layout="stacked", normalization=normalization, backend="torch")
    x, g = torch.randn(24, dtype=torch.float64), torch.randn(P.D, dtype=torch.float64)
    whole = P.matvec(x), P.rmatvec(g)
    monkeypatch.setattr(fastfood, "WORK_CHUNK_ELEMENTS", 64)  # 2 blocks of 32 per chunk
    chunks = list(P._chunks(P.groups[0]))
    assert len(chunks) == -(-P.groups[0].count // 2) > 1
    assert [start for _, _, start, _ in chunks[1:]] == [stop for _, _, _, stop in chunks[:-1]]
    assert chunks[0][2] == 0 and chunks[-1][3] == P.D
    # Applied in chunks, and with the random state drawn in chunks too.
    Q = FastfoodProjection(24, ODD_SEGMENTS, seed=4, layout="stacked", normalization=normalization, backend="torch")
    for projection in (P, Q):
        torch.testing.assert_close(projection.matvec(x), whole[0])
        torch.testing.assert_close(projection.rmatvec(g), whole[1])


def test_sparse_chunked_transpose_gives_the_same_numbers(monkeypatch):
    import intrinsic.projections.sparse as sparse

    P = make_projection("sparse", 30, ODD_SEGMENTS, seed=2, density=0.3)
    g = torch.randn(P.D, dtype=torch.float64)
    expected = P.to_dense().T @ g
    monkeypatch.setattr(sparse, "WORK_CHUNK_NONZEROS", 17)
    assert len(list(P._row_chunks())) > 10
    torch.testing.assert_close(P.rmatvec(g), expected)
