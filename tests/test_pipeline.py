"""The one protect path end to end, on the real reference surrogate."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import numpy as np
import piexif
import pytest
import torch
from grasp_sdk.options import ProtectOptions
from PIL import Image
from skimage import data

from grasp_guard import pipeline
from grasp_guard.defense.metrics import (
    SUCCESS_THRESHOLD,
    evaluate_editing,
    framed_editing,
    psnr,
)
from grasp_guard.defense.transforms import SiteSpec
from grasp_guard.demo import sample_photo
from grasp_guard.errors import ConfigError, ImageTooLargeError, InvalidImageError
from grasp_guard.faces.detect import FaceBox, KnownBoxes
from grasp_guard.faces.regions import extract_crops, paste, to_tensor
from grasp_guard.media import decode, encode
from grasp_guard.pipeline import (
    CropOutcome,
    CropTask,
    Engine,
    finish,
    prepare,
    protect,
    site_spec,
    torch_device,
)

FAST = ProtectOptions(preset="fast")


def _noise_png(rng: np.random.Generator, height: int, width: int) -> bytes:
    """A lossless photo of mid-grey noise: every change of PSNR is the code's."""
    buf = io.BytesIO()
    Image.fromarray((rng.random((height, width, 3)) * 120 + 60).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.create(("reference",), "cpu")


@pytest.fixture(scope="module")
def photo() -> bytes:
    return sample_photo()


@pytest.fixture(scope="module")
def protected(engine: Engine, photo: bytes) -> tuple[bytes, dict]:
    return protect(photo, FAST, engine)


def test_protects_the_face_and_keeps_metadata(photo: bytes, protected: tuple[bytes, dict]) -> None:
    out, report = protected
    assert report["protected"] and len(report["faces"]) == 1
    before, after = decode(photo).upright, decode(out).upright
    assert before.shape == after.shape
    x, y, w, h = report["faces"][0]["box"]
    face_diff = np.abs(after[y:y + h, x:x + w].astype(int) - before[y:y + h, x:x + w]).mean()
    assert face_diff > 0.5
    assert piexif.load(out)["0th"][piexif.ImageIFD.Make] == b"GRASP Guard demo"
    assert piexif.load(out)["thumbnail"] != piexif.load(photo)["thumbnail"]
    assert Image.open(io.BytesIO(out)).quantization == Image.open(io.BytesIO(photo)).quantization


def test_report_measures_the_output(protected: tuple[bytes, dict]) -> None:
    _, report = protected
    face = report["faces"][0]
    assert 30 < report["psnr"] < 80 and 0.9 < report["ssim"] <= 1
    assert set(face["surrogates"]) == {"reference"}
    assert 0 <= face["surrogates"]["reference"]["dsr_cmua"] <= 1
    assert report["dsr_framed"] == face["surrogates"]["reference"]["dsr_framed"]
    assert 0 <= report["dsr_framed"] <= 1
    assert "not a real deepfake model" in report["surrogates"][0]
    assert report["detector"] == "haar"  # the suite's cache is empty: the fallback
    assert report["bytes_out"] > 0 and report["seconds"]["total"] > 0


def test_a_faces_margin_is_its_weakest_judged_edit_over_the_threshold(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    clean = (rng.random((2, 64, 64, 3)) * 200 + 20).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
    (editor,) = engine.editors
    x, y = to_tensor(list(clean)), to_tensor(list(noisy))
    judged = torch.cat([evaluate_editing(editor, x, y).cmua_distortion,
                        framed_editing(editor, x, y).cmua_distortion], dim=1)
    faces = engine.evaluate(list(clean), list(noisy))
    for face, weakest in zip(faces, judged.min(dim=1).values):
        assert face["reference"]["margin"] == pytest.approx(float(weakest) / SUCCESS_THRESHOLD)
    untouched = engine.evaluate(list(clean), list(clean))
    assert [face["reference"]["margin"] for face in untouched] == [0.0, 0.0]
    # with every framing far past the threshold, the weakest edit is one at our own crop
    far = lambda *a: replace(framed_editing(*a), cmua_distortion=torch.ones(2, 1))
    monkeypatch.setattr("grasp_guard.pipeline.framed_editing", far)
    own = evaluate_editing(editor, x, y).cmua_distortion.min(dim=1).values
    for face, weakest in zip(engine.evaluate(list(clean), list(noisy)), own):
        assert face["reference"]["margin"] == pytest.approx(float(weakest) / SUCCESS_THRESHOLD)


def test_the_budget_is_spent_on_what_leaves(engine: Engine, photo: bytes) -> None:
    # fine noise at the preset's 40.3 dB, which the JPEG re-encode mostly quantises away: the
    # face's perturbation is scaled up by what it lost, so the face as received sits near
    # the budget instead of far above it
    prepared = prepare(photo, FAST)
    (task,) = prepared.tasks
    rng = np.random.default_rng(0)
    noise = rng.choice([-3.0, 3.0], task.crop.shape) * task.weight[..., None]
    crop = np.clip(task.crop + np.rint(noise), 0, 255).astype(np.uint8)
    plain = decode(encode(prepared.image, paste(prepared.image.upright, prepared.regions, [crop],
                                                  feather=0.0))).upright
    lost = psnr(task.crop, extract_crops(plain, prepared.regions)[0])
    _, report = finish(prepared, [CropOutcome(crop, 1, 0.0, 1)], engine)
    face = report["faces"][0]
    assert lost > 41.0 and face["budget_gain"] > 1.2
    assert abs(face["psnr"] - 40.3) < abs(lost - 40.3) / 2
    assert face["psnr_full"] == pytest.approx(face["psnr"], abs=0.5)  # a crop not shrunk


def test_a_border_faces_psnr_is_over_the_photo_not_its_mirrored_padding(engine: Engine) -> None:
    # A face in a photo narrower than its crop: the crop is mirrored past the border, and
    # the perturbation pasted near the edge comes back twice in the re-cut crop. The reported
    # PSNR, and the budget the top-up aims at, are over the photo's pixels only.
    rng = np.random.default_rng(3)
    png = _noise_png(rng, 300, 120)
    prepared = prepare(png, FAST, detector=KnownBoxes([FaceBox(20, 100, 80, 80)]))
    (task,), (region,) = prepared.tasks, prepared.regions
    assert region.crop.x < 0
    noise = np.zeros(task.crop.shape, np.float32)
    edge = -region.crop.x + np.arange(12)  # the photo's first 12 columns, mirrored outside
    noise[:, edge] = rng.choice([-9.0, 9.0], noise[:, edge].shape)
    crop = np.clip(task.crop + np.rint(noise * task.weight[..., None]), 0, 255).astype(np.uint8)
    out, report = finish(prepared, [CropOutcome(crop, 1, 0.0, 1)], engine)
    face = report["faces"][0]
    assert face["psnr"] == pytest.approx(face["psnr_full"], abs=0.05)  # lossless, not shrunk
    recut = extract_crops(decode(out).upright, prepared.regions)[0]
    assert psnr(task.crop, recut) < face["psnr"] - 1.0  # the padding would count it twice


def test_no_face_is_pushed_past_the_budget_by_a_neighbours_top_up(engine: Engine) -> None:
    # A group photo: a large face's crop covers a small face's. The large face's perturbation
    # lies only where the two crops meet, so its own crop sits far under the budget and asks
    # for the largest top-up, which would put the small face's crop 4 dB past it (35.99 dB
    # before this was handled). Lossless PNG: every change of PSNR is the top-up's.
    rng = np.random.default_rng(0)
    png = _noise_png(rng, 360, 480)
    prepared = prepare(png, FAST,
                       detector=KnownBoxes([FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40)]))
    (big, small), (rb, rs) = prepared.tasks, prepared.regions
    assert rb.crop.meets(rs.crop)
    noise = np.zeros(big.crop.shape, np.float32)
    where = (slice(max(rs.crop.y - rb.crop.y, 0), rs.crop.y1 - rb.crop.y),
             slice(max(rs.crop.x - rb.crop.x, 0), rs.crop.x1 - rb.crop.x))
    noise[where] = rng.choice([-6.0, 6.0], noise[where].shape)
    crop = np.clip(big.crop + np.rint(noise * big.weight[..., None]), 0, 255).astype(np.uint8)
    _, report = finish(prepared, [CropOutcome(crop, 1, 0.0, 1), CropOutcome(small.crop, 1, 0.0, 1)],
                       engine)
    large, little = report["faces"]
    assert 40.1 <= little["psnr"] <= 41.0  # at the budget, not past it, nor far under
    assert large["psnr"] > 40.3 and 1.0 < large["budget_gain"] < 2.0  # topped up as far as fits


@pytest.mark.parametrize("quality", [75, 90])
def test_a_group_photo_spends_its_budget_and_keeps_within_it(engine: Engine, quality: int) -> None:
    # Four faces whose crops (512, 320, 256, 128 px) all meet, each with fine noise near its
    # share of the budget. At q75 the re-encode quantises most of it away, and topping each
    # face up alone overshot where the neighbours' top-ups land in its crop too; capping
    # them then left every crop about 1 dB under the budget (41.3-41.9 dB). At q90 the
    # neighbours' pastes put the crops past it, and one stayed there (39.9 dB).
    rng = np.random.default_rng(1)
    rgb = (rng.random((600, 600, 3)) * 60 + 100).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    boxes = [FaceBox(330, 100, 200, 200), FaceBox(74, 292, 150, 150), FaceBox(194, 122, 128, 128),
             FaceBox(250, 300, 60, 60)]
    prepared = prepare(buf.getvalue(), FAST, detector=KnownBoxes(boxes))
    assert len({r.bucket for r in prepared.regions}) == 4
    outcomes = []
    for task in prepared.tasks:
        noise = rng.choice([-3.0, 3.0], task.crop.shape) * task.weight[..., None]
        protected = np.clip(task.crop + np.rint(noise), 0, 255).astype(np.uint8)
        outcomes.append(CropOutcome(protected, 1, 0.0, 1))
    _, report = finish(prepared, outcomes, engine)
    faces = report["faces"]
    assert min(face["psnr"] for face in faces) >= 40.1  # no crop past the budget
    for i, meets in enumerate(pipeline._overlaps(prepared.regions)):
        # each face spent what it could: at its largest gain, or one of its crops is full
        full = [j for j in (i, *meets) if faces[j]["psnr"] <= 40.6]
        assert faces[i]["budget_gain"] == 2.0 or full, (i, faces)


def test_a_crop_shrunk_to_the_ladder_is_optimised_through_its_paste() -> None:
    rgb = (np.random.default_rng(0).random((700, 650, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    (task,) = prepare(buf.getvalue(), ProtectOptions(on_no_face="whole")).tasks
    assert task.crop.shape[0] == 512 and task.delivery is not None
    assert task.delivery.shape == (2, 512, 512) and not np.allclose(task.delivery[0], np.eye(512))


def test_overlapping_crops_of_one_size_are_optimised_jointly(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # a couple: two faces of one bucket whose crops overlap, and a third face apart
    png = _noise_png(np.random.default_rng(5), 300, 700)
    boxes = [FaceBox(100, 110, 60, 60), FaceBox(190, 100, 62, 62), FaceBox(560, 100, 60, 60)]
    prepared = prepare(png, FAST, detector=KnownBoxes(boxes))
    a, b, apart = prepared.tasks
    assert [j for j, _ in a.neighbours] == [1] and [j for j, _ in b.neighbours] == [0]
    assert apart.neighbours == () and a.photo == b.photo == apart.photo
    other = prepare(png, FAST, detector=KnownBoxes(boxes)).tasks[1]
    assert other.photo != a.photo
    handed: list[list] = []
    real = pipeline.grasp

    def recording(*args: object, crosstalk: list, **kwargs: object) -> object:
        handed.append(crosstalk)
        return real(*args, crosstalk=crosstalk, **kwargs)

    monkeypatch.setattr("grasp_guard.pipeline.grasp", recording)
    engine.optimise([a, apart, other, b], max_steps=1)  # another photo's crop in the batch
    assert [(i, j) for i, j, _ in handed[0]] == [(0, 3), (3, 0)]
    np.testing.assert_array_equal(handed[0][0][2].numpy(), a.neighbours[0][1])


def _group_photo(boxes: list[FaceBox]) -> pipeline.PreparedImage:
    png = _noise_png(np.random.default_rng(5), 400, 900)
    return prepare(png, FAST, detector=KnownBoxes(boxes))


def test_crops_of_other_sizes_that_overlap_are_optimised_in_turn_smallest_first() -> None:
    # a large face whose crop covers a small one's; a third face, apart, of a third size
    prepared = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40),
                             FaceBox(650, 120, 80, 80)])
    sides = [t.crop.shape[0] for t in prepared.tasks]
    assert len(set(sides)) == 3
    assert prepared.stages() == [[1, 2], [0]]  # the face apart needs no stage of its own
    apart = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(650, 120, 40, 40)])
    assert apart.stages() == [[1, 0]]


def test_only_first_stage_crops_a_later_stage_reaches_run_again() -> None:
    # face 2 is in the first stage's group (its crop size) but nothing later reaches it
    prepared = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40),
                             FaceBox(650, 120, 40, 40)])
    assert prepared.stages() == [[1, 2], [0]]
    assert prepared.passes(3) == [([1, 2], None), ([0], None), ([1], 3)]
    assert prepared.passes() == [([1, 2], None), ([0], None)]  # fast: none
    balanced = replace(prepared, options=ProtectOptions(preset="balanced"))
    assert balanced.passes()[-1] == ([1], pipeline.REFINE_STEPS["balanced"])
    one_stage = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(650, 120, 40, 40)])
    assert one_stage.passes(3) == [([1, 0], None)]


def test_a_later_stage_sees_what_the_earlier_one_pasted(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40)])
    big, small = prepared.tasks
    handed: list[torch.Tensor | None] = []
    real = pipeline.grasp

    def recording(*args: object, context: torch.Tensor | None, **kwargs: object) -> object:
        handed.append(context)
        return real(*args, context=context, **kwargs)

    monkeypatch.setattr("grasp_guard.pipeline.grasp", recording)
    _, report = pipeline.protect_prepared(prepared, engine)
    assert handed[0] is None  # the small face goes first, alone
    context = handed[1]
    assert context is not None and context.shape == (1, 3, *big.crop.shape[:2])
    # the small face's pasted perturbation, where its crop lies in the large face's crop
    small_out = report["faces"][1]
    assert small_out["crop"] == small.crop.shape[0]
    rs, rb = prepared.regions[1], prepared.regions[0]
    inside = context[0, :, max(rs.crop.y - rb.crop.y, 0):rs.crop.y1 - rb.crop.y,
                     max(rs.crop.x - rb.crop.x, 0):rs.crop.x1 - rb.crop.x]
    assert inside.abs().max() > 0 and float(context.abs().sum()) == pytest.approx(
        float(inside.abs().sum()))
    assert prepared.in_context([0], {})[0].context is None


@pytest.mark.parametrize(("max_steps", "refine_steps"), [(2, 1), (1, 3)])
def test_the_first_stage_refined_goes_on_from_its_outcome_in_the_later_stages_context(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, max_steps: int, refine_steps: int
) -> None:
    prepared = _group_photo([FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40)])
    small = prepared.tasks[1]
    calls: list[dict[str, Any]] = []
    real = pipeline.grasp

    def recording(x: torch.Tensor, *args: object, **kwargs: Any) -> object:
        calls.append({"x": x, "steps": args[1].steps, **kwargs})  # type: ignore[attr-defined]
        return real(x, *args, **kwargs)

    monkeypatch.setattr("grasp_guard.pipeline.grasp", recording)
    outcomes = pipeline.optimise_prepared(prepared, engine, max_steps=max_steps,
                                          refine_steps=refine_steps)
    capped = min(max_steps, refine_steps)  # both caps hold
    assert [c["x"].shape[-1] for c in calls] == [small.crop.shape[0], prepared.tasks[0].crop.shape[0],
                                                 small.crop.shape[0]]
    assert calls[0]["init"] is None and calls[1]["init"] is None
    refined = calls[2]
    assert refined["steps"] == capped and refined["init"].abs().max() > 0  # from its outcome
    # in the large face's context as it finally stands, its own δ not in it
    (later,) = prepared.in_context([1], {0: outcomes[0]})
    assert later.context is not None
    expected = to_tensor([later.context]) - to_tensor([small.crop])
    torch.testing.assert_close(refined["context"], expected)
    (again,) = prepared.in_context([1], {0: outcomes[0], 1: outcomes[1]})
    np.testing.assert_array_equal(again.start, outcomes[1].protected)
    np.testing.assert_array_equal(again.context, later.context)
    assert again.group_key != small.group_key  # a warm start never batches with a fresh one
    assert outcomes[1].iterations == max_steps + capped  # both runs count
    assert outcomes[0].iterations == max_steps


def test_protect_runs_the_first_stage_again_when_asked(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = [FaceBox(120, 100, 120, 120), FaceBox(300, 150, 40, 40)]
    seen: list[dict[str, Any]] = []
    real = pipeline.optimise_prepared

    def one_step(prepared: pipeline.PreparedImage, engine: Engine, **kwargs: Any) -> object:
        seen.append(kwargs)
        return real(prepared, engine, max_steps=1, **kwargs)

    monkeypatch.setattr("grasp_guard.pipeline.optimise_prepared", one_step)
    data = _group_photo(boxes).data
    _, report = protect(data, FAST, engine, detector=KnownBoxes(boxes), refine_steps=2)
    assert seen == [{"refine_steps": 2}]
    large, small = report["faces"]
    assert large["iterations"] == 1 and small["iterations"] > 1  # the first stage ran twice


@pytest.mark.parametrize(("height", "refused"), [(600, False), (601, True)])
def test_a_whole_image_square_past_the_pixel_limit_is_refused(height: int, refused: bool) -> None:
    # Found by the service fuzz: a JPEG declaring 48 × 41374 px made a 41374² square (20 GB).
    rgb = (np.random.default_rng(0).random((height, 16, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    whole = ProtectOptions(on_no_face="whole")
    if refused:
        with pytest.raises(ImageTooLargeError, match="601 × 601 square"):
            prepare(buf.getvalue(), whole, max_pixels=600 * 600)
    else:
        (task,) = prepare(buf.getvalue(), whole, max_pixels=600 * 600).tasks
        assert task.delivery is not None and task.delivery.shape == (2, 512, 512)


def test_blur_sigmas_a_hair_apart_share_a_batching_group() -> None:
    def blur(sigma: float) -> object:
        return site_spec(ProtectOptions(site_blur_sigma=sigma)).blur_sigma

    assert blur(1.0) == blur(1.0000000001) == blur(1.02) == (1.0, 1.0)
    assert blur(0.001) == (0.05, 0.05) and blur(10.0) == (10.0, 10.0)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (10, 40), (3000, 2), (600, 12)])
def test_an_image_too_small_to_protect_whole_is_refused_before_any_work(
        height: int, width: int) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buf, "PNG")
    with pytest.raises(InvalidImageError, match="too small or too thin to protect whole"):
        prepare(buf.getvalue(), ProtectOptions(on_no_face="whole"))


def test_no_face_is_byte_identical_with_skip(engine: Engine) -> None:
    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, "PNG")
    out, report = protect(buf.getvalue(), FAST, engine)
    assert out == buf.getvalue() and not report["protected"]


def test_no_face_whole_protects_everything(engine: Engine) -> None:
    rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    out, report = protect(buf.getvalue(), ProtectOptions(preset="fast", on_no_face="whole"), engine)
    assert report["protected"] and report["whole_image"]
    assert decode(out).upright.shape == rgb.shape and out != buf.getvalue()


def test_crops_share_a_group_per_bucket(photo: bytes) -> None:
    prepared = prepare(photo, FAST)
    assert len(prepared.tasks) == 1 and prepared.tasks[0].crop.shape[0] in (128, 160, 192, 256)
    site = prepare(photo, ProtectOptions(preset="fast", site_jpeg_quality=80, site_max_side=256))
    assert site.tasks[0].group_key != prepared.tasks[0].group_key


def test_shrunk_crops_group_by_the_scale_their_site_pipeline_runs_at() -> None:
    crop, weight = np.zeros((512, 512, 3), np.uint8), np.ones((512, 512), np.float32)

    def key(scale: float, site: SiteSpec) -> tuple:
        return CropTask(crop, weight, "fast", site, 2280, scale=scale).group_key

    jpeg = SiteSpec(jpeg_quality=(94, 94))
    assert key(512 / 1328, SiteSpec()) == key(512 / 1598, SiteSpec()) == key(1.0, SiteSpec())
    assert key(512 / 1328, jpeg) == key(512 / 1598, jpeg) != key(1.0, jpeg)  # both 3× finer


def test_bad_input_is_a_typed_error(engine: Engine) -> None:
    with pytest.raises(InvalidImageError):
        protect(b"", FAST, engine)
    with pytest.raises(InvalidImageError):
        protect(sample_photo()[:500], FAST, engine)


def test_a_site_name_brings_its_pipeline(photo: bytes) -> None:
    prepared = prepare(photo, ProtectOptions(preset="fast", site="instagram"))
    assert prepared.options.site_jpeg_quality is not None
    assert prepared.tasks[0].site.jpeg_quality is not None


def test_an_unknown_site_has_no_pipeline(photo: bytes) -> None:
    # the proxy and the SDK resolve sites from their own policy; the engine does not refuse
    prepared = prepare(photo, ProtectOptions(preset="fast", site="nowhere"))
    assert prepared.tasks[0].site.max_side is None


def test_a_jpeg_source_survives_its_own_reencode(photo: bytes) -> None:
    # the output is re-encoded at the source's quality: the defense optimises through it
    assert prepare(photo, FAST).tasks[0].site.jpeg_quality == (92, 92)


def test_faces_of_different_sizes_in_one_photo(engine: Engine) -> None:
    face = data.astronaut()
    canvas = np.zeros((900, 1200, 3), np.uint8) + 90
    canvas[20:532, 20:532] = face
    canvas[600:856, 800:1056] = np.asarray(Image.fromarray(face).resize((256, 256)))
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "PNG")
    out, report = protect(buf.getvalue(), FAST, engine)
    assert len(report["faces"]) == 2
    assert len({f["crop"] for f in report["faces"]}) == 2  # two buckets, two batches
    assert decode(out).upright.shape == canvas.shape


def test_a_fully_convolutional_surrogate_is_judged_at_every_editing_size() -> None:
    from grasp_guard.models.cyclegan import (
        CycleGANConfig,
        CycleGANEditor,
        ResnetGenerator,
        cyclegan_info,
    )

    torch.manual_seed(0)
    editor = CycleGANEditor(ResnetGenerator(CycleGANConfig(ngf=8, n_blocks=1)),
                            cyclegan_info("tiny-cyclegan", 64, (32, 128))).eval().freeze()
    engine = Engine([editor], torch.device("cpu"))
    rgb = np.asarray(Image.fromarray(data.astronaut()[:256, 128:384]).resize((64, 64)))
    noisy = np.clip(rgb.astype(int) + np.random.default_rng(0).integers(-40, 41, rgb.shape),
                    0, 255).astype(np.uint8)
    (face,) = engine.evaluate([rgb], [noisy])
    per_size = face["tiny-cyclegan"]["by_resolution"]
    assert set(per_size) == {"32", "64"}  # 128 is above the first size that holds the face
    mean = np.mean([v["distortion"] for v in per_size.values()])
    assert face["tiny-cyclegan"]["distortion"] == pytest.approx(mean)
    assert all(v["distortion"] > 0 for v in per_size.values())


@pytest.mark.parametrize(("name", "says"), [("gpu", "unknown device"),
                                             ("cuda:99", "not on this machine")])
def test_a_device_that_is_not_there_is_a_config_error(name: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        torch_device(name)
    assert torch_device("cpu") == torch.device("cpu")
