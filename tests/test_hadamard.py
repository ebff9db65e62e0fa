import pytest
import torch

from intrinsic import hadamard_transform
from intrinsic.hadamard import available_backends, sylvester_matrix


@pytest.mark.parametrize("n", [1, 2, 4, 8, 64, 128, 2048, 8192])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_explicit_sylvester_matrix(n, dtype):
    x = torch.randn(3, 2, n, dtype=dtype)
    expected = x @ sylvester_matrix(n, torch.float64).to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(hadamard_transform(x), expected, rtol=tol, atol=tol * n**0.5)


def test_sylvester_matrix_is_orthogonal_up_to_n():
    H = sylvester_matrix(32, torch.float64)
    torch.testing.assert_close(H @ H, 32 * torch.eye(32, dtype=torch.float64))
    torch.testing.assert_close(H, H.T)


def test_involution_at_large_size():
    x = torch.randn(2, 2**20, dtype=torch.float64)
    torch.testing.assert_close(hadamard_transform(hadamard_transform(x)), 2**20 * x)


@pytest.mark.slow
def test_delta_at_2_pow_27_gives_a_row_of_h():
    n, j = 2**27, 0b101100111000011110000011111
    x = torch.zeros(n)
    x[j] = 1.0
    y = hadamard_transform(x)
    del x
    bits = torch.arange(n, dtype=torch.int32) & j
    for shift in (16, 8, 4, 2, 1):  # fold the xor of all bits into bit 0
        bits ^= bits >> shift
    parity = bits & 1
    assert torch.equal(y, (1 - 2 * parity).float())


def test_gradcheck_float64():
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(hadamard_transform, (x,))


def test_half_precision_is_computed_in_float32():
    x = torch.randn(4, 256)
    y = hadamard_transform(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), hadamard_transform(x), rtol=2e-2, atol=0.5)


@pytest.mark.parametrize("bad", [3, 12, 1000])
def test_rejects_non_power_of_two(bad):
    with pytest.raises(ValueError, match="power of two"):
        hadamard_transform(torch.randn(2, bad))


def test_rejects_integer_input():
    with pytest.raises(TypeError):
        hadamard_transform(torch.ones(4, dtype=torch.int64))


def test_every_available_backend_agrees_with_torch():
    # Backends sum in different orders: float32 agreement to 1e-6 of the output scale √n·|x|.
    x = torch.randn(5, 1024)
    reference = hadamard_transform(x, backend="torch")
    for backend in available_backends(x.device):
        torch.testing.assert_close(hadamard_transform(x, backend=backend), reference, rtol=0, atol=1e-6 * 32 * 4)


def test_unusable_backend_warns_and_falls_back(monkeypatch):
    monkeypatch.setenv("INTRINSIC_HADAMARD_BACKEND", "fast_hadamard_transform")
    x = torch.randn(2, 8, dtype=torch.float64)  # no CUDA kernel has float64
    with pytest.warns(RuntimeWarning, match="falling back"):
        y = hadamard_transform(x)
    torch.testing.assert_close(y, x @ sylvester_matrix(8, torch.float64))


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Hadamard backend"):
        hadamard_transform(torch.randn(4), backend="nope")


def test_sylvester_entries_are_parity_signs():
    H = sylvester_matrix(64, torch.float64)
    for i, j in [(0, 0), (5, 9), (63, 63), (17, 40)]:
        assert H[i, j] == (-1) ** bin(i & j).count("1")
