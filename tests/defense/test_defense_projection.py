"""Hand-made vectors for the conflict projection, and the gradient smoothing."""

from __future__ import annotations

import pytest
import torch

from grasp_guard.defense.projection import project_off, resolve_conflicts, smooth


def _v(*rows: list[float]) -> torch.Tensor:
    """A batch of flat 2-D vectors shaped (B, 1, 1, 2), like tiny gradients."""
    return torch.tensor(rows, dtype=torch.float64).view(len(rows), 1, 1, -1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(dim=1)


@pytest.mark.parametrize(
    ("g", "onto", "expected"),
    [
        ([-1.0, 1.0], [1.0, 0.0], [0.0, 1.0]),  # conflict: the opposing part goes
        ([1.0, 1.0], [1.0, 0.0], [1.0, 1.0]),  # agreement: untouched
        ([0.0, 1.0], [1.0, 0.0], [0.0, 1.0]),  # orthogonal: untouched
        ([-2.0, 0.0], [1.0, 0.0], [0.0, 0.0]),  # opposite: removed entirely
        ([-1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]),  # nothing to project on: untouched, no NaN
        ([-3.0, 1.0], [2.0, 2.0], [-2.0, 2.0]),  # ⟨g, d⟩ = −4, ‖d‖² = 8 → g + d/2
    ],
)
def test_project_off_hand_cases(g: list[float], onto: list[float], expected: list[float]) -> None:
    torch.testing.assert_close(project_off(_v(g), _v(onto)), _v(expected))


def test_project_off_is_per_sample() -> None:
    g = _v([-1.0, 1.0], [1.0, 1.0])
    onto = _v([1.0, 0.0], [1.0, 0.0])
    out = project_off(g, onto)
    torch.testing.assert_close(out, _v([0.0, 1.0], [1.0, 1.0]))
    torch.testing.assert_close(out[:1], project_off(g[:1], onto[:1]))


@pytest.mark.parametrize("seed", range(5))
def test_projected_visual_never_opposes_defense(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    g_d = torch.randn(8, 3, 6, 6, generator=gen, dtype=torch.float64)
    visuals = [torch.randn(8, 3, 6, 6, generator=gen, dtype=torch.float64) for _ in range(2)]
    new_d, new_vs = resolve_conflicts(g_d, visuals, project_visual=True, cross=False)
    torch.testing.assert_close(new_d, g_d)
    for before, after in zip(visuals, new_vs):
        assert (_dot(after, g_d) >= -1e-9).all()
        agree = _dot(before, g_d) >= 0
        torch.testing.assert_close(after[agree], before[agree])


def test_cross_projection_uses_the_visual_gradient_before_its_projection() -> None:
    g_d = _v([1.0, 0.0])
    g_v = _v([-1.0, 1.0])
    new_d, (new_v,) = resolve_conflicts(g_d, [g_v], project_visual=True, cross=True)
    torch.testing.assert_close(new_v, _v([0.0, 1.0]))
    # g_d − ⟨g_d, g_v⟩/‖g_v‖² g_v = (1, 0) + ½(−1, 1)
    torch.testing.assert_close(new_d, _v([0.5, 0.5]))
    assert _dot(new_d, g_v).item() >= 0


def test_cross_projection_alone_leaves_the_visual_gradient() -> None:
    g_d, g_v = _v([1.0, 0.0]), _v([-1.0, 1.0])
    new_d, (new_v,) = resolve_conflicts(g_d, [g_v], project_visual=False, cross=True)
    torch.testing.assert_close(new_v, g_v)
    torch.testing.assert_close(new_d, _v([0.5, 0.5]))


def test_no_projection_is_identity() -> None:
    g_d, g_v = _v([1.0, 0.0]), _v([-1.0, 1.0])
    new_d, (new_v,) = resolve_conflicts(g_d, [g_v], project_visual=False, cross=False)
    torch.testing.assert_close(new_d, g_d)
    torch.testing.assert_close(new_v, g_v)


def test_visuals_are_resolved_in_order_against_the_current_defense_gradient() -> None:
    g_d = _v([1.0, 0.0])
    g_s, g_f = _v([-1.0, 1.0]), _v([0.0, -1.0])
    new_d, (new_s, new_f) = resolve_conflicts(g_d, [g_s, g_f], project_visual=True, cross=True)
    # after g_s, g_d = (0.5, 0.5); g_f conflicts with it: (0, −1) − (−0.5/0.5)·(0.5, 0.5)
    torch.testing.assert_close(new_s, _v([0.0, 1.0]))
    torch.testing.assert_close(new_f, _v([0.5, -0.5]))
    # g_d (0.5, 0.5) off the original g_f (0, −1): (0.5, 0.5) − (−0.5)·(0, −1) = (0.5, 0)
    torch.testing.assert_close(new_d, _v([0.5, 0.0]))


def test_smooth_keeps_constants_and_damps_noise() -> None:
    const = torch.full((2, 3, 9, 9), 0.7)
    torch.testing.assert_close(smooth(const, 5, 1.0), const)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = smooth(noise, 5, 1.0)
    assert out.shape == noise.shape
    assert out.std() < 0.5 * noise.std()


def test_smooth_is_per_sample() -> None:
    noise = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(smooth(noise, 3, 0.8)[1:2], smooth(noise[1:2], 3, 0.8))
