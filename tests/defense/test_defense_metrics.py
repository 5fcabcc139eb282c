"""PSNR and SSIM against skimage; distortion and both DSRs on a hand-made editor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from grasp_guard.defense import metrics
from grasp_guard.models.editor import Editor, EditorInfo

RES = 16


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(
        a, b, channel_axis=-1 if a.ndim == 3 else None, data_range=255, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False))


def _noisy(a: np.ndarray, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a.astype(np.int16) + rng.integers(-scale, scale + 1, a.shape), 0, 255).astype(
        np.uint8)


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    astro = data.astronaut()
    crop = astro[30:150, 170:280]
    camera = data.camera()[::4, ::4]
    return [
        ("random", rand, rng.integers(0, 256, rand.shape, dtype=np.uint8)),
        ("random-close", rand, _noisy(rand, 3, 1)),
        ("astronaut", astro, _noisy(astro, 2, 2)),
        ("astronaut-crop", crop, _noisy(crop, 6, 3)),
        ("camera-gray", camera, _noisy(camera, 4, 4)),
    ]


PAIRS = _pairs()


@pytest.mark.parametrize(("a", "b"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_psnr_and_ssim_match_skimage(a: np.ndarray, b: np.ndarray) -> None:
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255),
                                               abs=1e-9)
    assert metrics.ssim(a, b) == pytest.approx(_sk_ssim(a, b), abs=1e-4)


def test_identical_images_score_inf_and_one() -> None:
    a = data.astronaut()[:64, :64]
    assert metrics.psnr(a, a) == float("inf")
    assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_uint8_metrics_reject_other_inputs() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        metrics.ssim(a, a[:8])


def test_batch_metrics_quantise_and_equal_the_uint8_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 20, 24, generator=gen)
    y = (x + 0.02 * torch.randn(3, 3, 20, 24, generator=gen)).clamp(0, 1)
    p, s = metrics.batch_psnr(y, x), metrics.batch_ssim(y, x)
    for i in range(3):
        a = (metrics.quantise(x[i]) * 255).round().byte().permute(1, 2, 0).numpy()
        b = (metrics.quantise(y[i]) * 255).round().byte().permute(1, 2, 0).numpy()
        assert p[i].item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
        assert s[i].item() == pytest.approx(_sk_ssim(a, b), abs=1e-4)


def test_quantise_rounds_to_the_8_bit_grid_and_clamps() -> None:
    x = torch.tensor([-0.1, 0.0, 0.3 / 255, 0.6 / 255, 0.5, 1.2])
    expected = torch.tensor([0.0, 0.0, 0.0, 1 / 255, 128 / 255, 1.0])
    torch.testing.assert_close(metrics.quantise(x), expected)


def test_editor_input_resizes_and_skips_the_identity() -> None:
    x = torch.rand(2, 3, RES, RES)
    assert metrics.editor_input(x, RES) is x
    out = metrics.editor_input(torch.rand(2, 3, 40, 24), RES)
    assert out.shape == (2, 3, RES, RES)
    const = torch.full((1, 3, 40, 24), 0.25)
    torch.testing.assert_close(metrics.editor_input(const, RES), torch.full((1, 3, RES, RES), 0.25))


def test_expand_conditions() -> None:
    c = torch.eye(4)
    assert metrics.expand_conditions(c, 3).shape == (3, 4, 4)
    per_image = torch.zeros(3, 2, 4)
    assert metrics.expand_conditions(per_image, 3) is per_image
    with pytest.raises(ValueError, match="conditions"):
        metrics.expand_conditions(per_image, 2)


class LinearEditor(Editor):
    """G(x, c) = A_c · (2x − 1) + B_c with four hand-made edits (c one-hot).

    On a grey image (2x − 1 = 0) the clean edit is B_c, so the CMUA mask is where B_c is
    set; a perturbation δ changes the output by 2·A_c·δ.
    """

    def __init__(self) -> None:
        super().__init__()
        self.info = EditorInfo("linear", RES, ("both", "empty-mask", "outside", "inside"))
        a = torch.ones(4, 3, RES, RES)
        b = torch.ones(4, 3, RES, RES)
        left = torch.arange(RES) < RES // 2
        b[1] = 0.0  # edit 1 changes nothing: empty mask
        b[2][..., ~left] = 0.0  # edit 2 changes the left half …
        a[2][..., left] = 0.0  # … but only the right half reacts to δ
        b[3][..., ~left] = 0.0  # edit 3 changes the left half, which reacts
        a[3][..., ~left] = 0.0
        self.register_buffer("a", a)
        self.register_buffer("b", b)

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.eye(4)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        k = c.argmax(dim=1)
        return self.a[k] * self.to_model_space(x) + self.b[k]


@pytest.mark.parametrize("size", [RES, 24])
def test_dsr_hand_cases(size: int) -> None:
    editor = LinearEditor()
    x = torch.full((1, 3, size, size), 0.5)
    x_adv = x + 0.15  # output moves by 0.3 where A = 1: MSE 0.09 there
    m = metrics.evaluate_defense(editor, x, x_adv)
    torch.testing.assert_close(m.distortion, torch.tensor([[0.09, 0.09, 0.045, 0.045]]))
    torch.testing.assert_close(m.cmua_distortion, torch.tensor([[0.09, 0.0, 0.0, 0.09]]))
    assert m.ruiz_success.tolist() == [[True, True, False, False]]
    assert m.cmua_success.tolist() == [[True, False, False, True]]  # empty mask: a failure
    assert m.dsr_cmua == 0.5 and m.dsr_ruiz == 0.5
    assert m.mean_distortion == pytest.approx(0.0675)


def test_clean_images_are_never_disrupted() -> None:
    editor = LinearEditor()
    x = torch.full((2, 3, RES, RES), 0.5)
    m = metrics.evaluate_defense(editor, x, x.clone())
    assert m.dsr_cmua == 0.0 and m.dsr_ruiz == 0.0
    assert m.distortion.shape == (2, 4)


def test_per_edit_images_are_paired_with_their_own_edit() -> None:
    editor = LinearEditor()
    x = torch.full((2, 3, RES, RES), 0.5)
    x_adv = x.unsqueeze(1).repeat(1, 4, 1, 1, 1)
    x_adv[1, 0] += 0.15  # only image 1 under edit 0 is perturbed
    m = metrics.evaluate_defense(editor, x, x_adv, batch_size=1)
    expected = torch.zeros(2, 4, dtype=torch.bool)
    expected[1, 0] = True
    assert torch.equal(m.cmua_success, expected)
    assert torch.equal(m.ruiz_success, expected)


def test_per_image_conditions_and_shape_checks() -> None:
    editor = LinearEditor()
    x = torch.full((2, 3, RES, RES), 0.5)
    cond = torch.stack([torch.eye(4)[[0]], torch.eye(4)[[1]]])  # (2, 1, 4)
    m = metrics.evaluate_defense(editor, x, x + 0.15, conditions=cond)
    assert m.cmua_success.tolist() == [[True], [False]]
    with pytest.raises(ValueError, match="x_adv"):
        metrics.evaluate_defense(editor, x, torch.zeros(2, 3, 3, RES, RES))
    with pytest.raises(ValueError, match="x_adv"):
        metrics.evaluate_defense(editor, x, torch.zeros(1, 3, RES, RES))


class StridedEditor(Editor):
    """Sees only every fourth pixel (phase 0, 0), as a strided convolution's grid does; an
    output that differs from its input everywhere, so the CMUA mask is full."""

    def __init__(self) -> None:
        super().__init__()
        self.info = EditorInfo("strided", RES, ("only",))

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.eye(1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen = torch.nn.functional.interpolate(x[..., ::4, ::4], scale_factor=4, mode="nearest")
        return self.to_model_space(seen) + 1.0


def test_reframe_moves_by_whole_pixels_and_mirrors_past_the_border() -> None:
    x = torch.rand(2, 3, 12, 12)
    assert torch.equal(metrics.reframe(x), x)
    moved = metrics.reframe(x, dx=2, dy=1)
    assert torch.equal(moved[..., 1:, 2:], x[..., :-1, :-2])
    assert torch.equal(moved[..., 1:, :2], x[..., :-1, 1:3].flip(-1))
    assert metrics.reframe(x, zoom=1.07).shape == x.shape
    per_edit = torch.rand(2, 4, 3, 12, 12)
    assert torch.equal(metrics.reframe(per_edit, 1, 0)[1, 2], metrics.reframe(per_edit[1, 2:3], 1, 0)[0])


def test_a_phase_locked_perturbation_passes_aligned_and_fails_the_attackers_framings() -> None:
    editor = StridedEditor()
    x = torch.full((1, 3, RES, RES), 0.5)
    locked = x.clone()
    locked[..., ::4, ::4] += 0.15  # only the pixels the editor's grid samples
    assert metrics.evaluate_editing(editor, x, locked).dsr_cmua == 1.0
    framed = metrics.framed_editing(editor, x, locked)
    assert framed.cmua_success.shape == (1, len(metrics.ATTACKER_SHIFTS) + len(metrics.ATTACKER_ZOOMS))
    assert not framed.cmua_success[0, :len(metrics.ATTACKER_SHIFTS)].any()
    assert framed.dsr_cmua <= 0.25
    smooth = x + 0.15  # the same change on every pixel survives any framing
    assert metrics.framed_editing(editor, x, smooth).dsr_cmua == 1.0


def test_psnr_and_ssim_over_a_mask_count_only_its_pixels() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:, :8] = 255 - b[:, :8]  # changed left of column 8 only
    inside = np.zeros((32, 32), bool)
    inside[:, 8:] = True
    psnr, ssim = metrics.psnr, metrics.ssim
    assert psnr(a, b, inside) == float("inf")
    assert psnr(a, b, ~inside) == pytest.approx(psnr(a[:, :8], b[:, :8]))
    assert ssim(a, b, inside) < 1.0  # windows centred by the border reach the change ...
    right = np.zeros((32, 32), bool)
    right[:, 16:] = True
    assert ssim(a, b, right) == pytest.approx(1.0)  # ... those further in do not
    assert ssim(a, b, inside) > ssim(a, b)
    with pytest.raises(ValueError, match="inside"):
        psnr(a, b, np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match="inside"):
        ssim(a, b, inside[:16])


def test_a_large_images_ssim_is_skimages_taken_in_bands_of_bounded_memory() -> None:
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)  # two and a bit bands
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-12)
    # a 2000 x 1500 photo at once: about 750 MB of float64 maps
    code = ("import resource, numpy as np\n"
            "from grasp_guard.defense.metrics import ssim\n"
            "a = np.zeros((2000, 1500, 3), np.uint8); b = a.copy(); b[::7] = 9\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "ssim(a, b)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    grown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=300).stdout
    assert int(grown) < 300, f"{grown.strip()} MB"
