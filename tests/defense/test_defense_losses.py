"""Closed-form cases, an skimage oracle and gradchecks for the GRASP losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from grasp_guard.defense import losses

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OPERATORS = ["gaussian", "dwt", "dct"]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_ssim_of_identical_images_is_one(device: torch.device) -> None:
    x = _rand(2, 3, 16, 20).to(device)
    torch.testing.assert_close(losses.ssim(x, x), torch.ones(2, device=device))
    torch.testing.assert_close(losses.ssim_loss(x, x), torch.zeros(2, device=device))


def test_ssim_is_symmetric_and_below_one_for_different_images() -> None:
    x, y = _rand(1, 3, 16, 16, seed=0), _rand(1, 3, 16, 16, seed=1)
    torch.testing.assert_close(losses.ssim(x, y), losses.ssim(y, x))
    assert losses.ssim(x, y).item() < 0.5


@pytest.mark.parametrize("shape", [(11, 11), (16, 23), (40, 32)])
def test_ssim_matches_skimage(shape: tuple[int, int]) -> None:
    x = _rand(1, 3, *shape, seed=2, dtype=torch.float64)
    y = (x + 0.1 * _rand(1, 3, *shape, seed=3, dtype=torch.float64)).clamp(0, 1)
    expected = structural_similarity(
        x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(), channel_axis=-1,
        data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert losses.ssim(x, y).item() == pytest.approx(expected, abs=1e-10)


def test_ssim_is_per_sample() -> None:
    x, y = _rand(3, 3, 16, 16, seed=4), _rand(3, 3, 16, 16, seed=5)
    together = losses.ssim(x, y)
    alone = torch.cat([losses.ssim(x[i:i + 1], y[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)


def test_ssim_inside_averages_only_the_windows_centred_there() -> None:
    x = _rand(2, 3, 32, 48, seed=6)
    y = x.clone()
    y[..., :16] = _rand(2, 3, 32, 16, seed=7)  # the left third differs
    every = torch.ones_like(x[:, :1], dtype=torch.bool)
    torch.testing.assert_close(losses.ssim(x, y, inside=every), losses.ssim(x, y))
    right = every.clone()
    right[..., :16 + 5] = False  # windows centred here reach no changed pixel
    assert (losses.ssim(x, y) < 0.9).all()
    torch.testing.assert_close(losses.ssim(x, y, inside=right), torch.ones(2))
    left = ~right
    assert (losses.ssim(x, y, inside=left) < losses.ssim(x, y)).all()


@pytest.mark.parametrize("shape", [(1, 3, 10, 16), (1, 3, 16), (1, 3, 16, 16, 1)])
def test_ssim_rejects_small_or_misshapen_input(shape: tuple[int, ...]) -> None:
    x = torch.zeros(shape)
    with pytest.raises(ValueError, match="ssim"):
        losses.ssim(x, x)


@pytest.mark.parametrize("operator", OPERATORS)
def test_low_frequency_loss_of_identical_images_is_zero(operator: str,
                                                         device: torch.device) -> None:
    x = _rand(2, 3, 15, 17).to(device)
    out = losses.low_frequency_loss(x, x, operator)  # type: ignore[arg-type]
    torch.testing.assert_close(out, torch.zeros(2, device=device))


@pytest.mark.parametrize("operator", OPERATORS)
def test_low_frequency_loss_of_a_constant_shift_is_its_square(operator: str) -> None:
    x = _rand(1, 3, 16, 16, dtype=torch.float64)
    out = losses.low_frequency_loss(x + 0.1, x, operator)  # type: ignore[arg-type]
    assert out.item() == pytest.approx(0.01, rel=1e-9)


@pytest.mark.parametrize(
    ("operator", "share"),
    [("dwt", 1e-20), ("dct", 1e-3)],  # 2×2 block means cancel exactly; DCT-II leaks a little
)
def test_low_frequency_loss_ignores_a_checkerboard(operator: str, share: float) -> None:
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = (((i + j) % 2) * 2 - 1).to(torch.float64).expand(1, 3, 16, 16) * 0.05
    x = torch.full((1, 3, 16, 16), 0.5, dtype=torch.float64)
    out = losses.low_frequency_loss(x + board, x, operator)  # type: ignore[arg-type]
    assert out.item() < share * 0.05**2


def test_gaussian_low_frequency_loss_damps_a_checkerboard() -> None:
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = (((i + j) % 2) * 2 - 1).to(torch.float64).expand(1, 3, 16, 16) * 0.05
    x = torch.full((1, 3, 16, 16), 0.5, dtype=torch.float64)
    # the replicated border breaks the alternation, so only most of it goes
    assert losses.low_frequency_loss(x + board, x, "gaussian", sigma=1.0).item() < 0.05 * 0.05**2


def test_low_frequency_loss_rejects_unknown_operator() -> None:
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="operator"):
        losses.low_frequency_loss(x, x, "fft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator"):
        losses.LowFrequencyLoss("fft")  # type: ignore[arg-type]


def test_ssim_loss_gradcheck() -> None:
    x = _rand(1, 2, 12, 13, seed=6, dtype=torch.float64).requires_grad_(True)
    y = _rand(1, 2, 12, 13, seed=7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: losses.ssim_loss(a, y), (x,))


@pytest.mark.parametrize("operator", OPERATORS)
def test_low_frequency_loss_gradcheck(operator: str) -> None:
    x = _rand(2, 2, 7, 9, seed=8, dtype=torch.float64).requires_grad_(True)
    y = _rand(2, 2, 7, 9, seed=9, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a: losses.low_frequency_loss(a, y, operator, sigma=1.0, levels=2, band=0.5),
        (x,))


@pytest.mark.parametrize("masked", [False, True])
def test_defense_loss_gradcheck(masked: bool) -> None:
    out = _rand(2, 3, 5, 5, seed=10, dtype=torch.float64).requires_grad_(True)
    ref = _rand(2, 3, 5, 5, seed=11, dtype=torch.float64)
    mask = (_rand(2, 1, 5, 5, seed=12, dtype=torch.float64) > 0.5).double() if masked else None
    assert torch.autograd.gradcheck(lambda a: losses.defense_loss(a, ref, mask), (out,))


def test_ssim_module_equals_function() -> None:
    x, y = _rand(2, 3, 16, 16, seed=13), _rand(2, 3, 16, 16, seed=14)
    module = losses.SSIMLoss()
    assert "window" in dict(module.named_buffers())
    torch.testing.assert_close(module(x, y), losses.ssim_loss(x, y))


@pytest.mark.parametrize("operator", OPERATORS)
def test_low_frequency_module_equals_function(operator: str) -> None:
    x, y = _rand(2, 3, 16, 18, seed=15), _rand(2, 3, 16, 18, seed=16)
    module = losses.LowFrequencyLoss(
        operator, sigma=1.5, levels=3, band=0.3)  # type: ignore[arg-type]
    expected = losses.low_frequency_loss(x, y, operator, 1.5, 3, 0.3)  # type: ignore[arg-type]
    torch.testing.assert_close(module(x, y), expected)


def test_defense_module_equals_function() -> None:
    a, b = _rand(2, 3, 8, 8, seed=17), _rand(2, 3, 8, 8, seed=18)
    mask = torch.ones(2, 1, 8, 8)
    torch.testing.assert_close(losses.DefenseLoss()(a, b), losses.defense_loss(a, b))
    torch.testing.assert_close(losses.DefenseLoss()(a, b, mask), losses.defense_loss(a, b, mask))


def test_defense_loss_is_per_sample_mse() -> None:
    a = torch.zeros(2, 3, 4, 4)
    b = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.3)])
    torch.testing.assert_close(losses.defense_loss(a, b), torch.tensor([0.01, 0.09]))


def test_cmua_mask_sums_channel_differences() -> None:
    source = torch.zeros(1, 3, 1, 3)
    edit = torch.tensor([[0.2, 0.0, 0.6], [0.2, 0.0, 0.0], [0.2, 0.6, 0.0]]).view(1, 3, 1, 3)
    # every pixel's channel sum is 0.6 > 0.5; then pixel 0 drops to 0.3
    np.testing.assert_array_equal(losses.cmua_mask(edit, source).flatten().numpy(), [1, 1, 1])
    edit[:, :, :, 0] = 0.1
    np.testing.assert_array_equal(losses.cmua_mask(edit, source).flatten().numpy(), [0, 1, 1])


def test_masked_mse_closed_form_and_empty_mask() -> None:
    a = torch.zeros(2, 3, 2, 2)
    b = torch.full((2, 3, 2, 2), 0.2)
    b[:, :, 0, 0] = 1.0  # outside the mask: must not count
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 1, :] = 1.0
    out = losses.masked_mse(a, b, mask)
    torch.testing.assert_close(out, torch.tensor([0.04, 0.0]))
