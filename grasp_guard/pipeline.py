"""``protect(image_bytes, options) -> (bytes, report)``: the one path every caller takes.

The path is split in three stages so the service can batch crops across requests:
:func:`prepare` (decode, find faces, cut bucket-sized crops; CPU), :meth:`Engine.optimise`
(one batched GRASP run over same-group crops; the device) and :func:`finish` (paste back,
re-encode with the original metadata, measure the result as it leaves; CPU).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from grasp_sdk.options import ProtectOptions

from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import (
    SUCCESS_THRESHOLD,
    EditMetrics,
    editing_resolutions,
    evaluate_defense,
    framed_editing,
    mse,
    psnr,
    ssim,
)
from grasp_guard.defense.transforms import (
    SiteSpec,
    build_site_pipeline,
    estimate_jpeg_quality,
    site_factor,
)
from grasp_guard.errors import ConfigError, ImageTooLargeError, InvalidImageError
from grasp_guard.faces.choose import default_detector
from grasp_guard.faces.detect import FaceBox, FaceDetector
from grasp_guard.faces.regions import (
    FaceRegion,
    crop_window,
    crosstalk_maps,
    delivery_maps,
    extract_crops,
    from_tensor,
    in_image_mask,
    paste,
    paste_weights,
    plan_regions,
    to_tensor,
    whole_image_region,
)
from grasp_guard.faces.sharing import budget_shares, top_up_gains
from grasp_guard.media import DecodedImage, decode, encode
from grasp_guard.media.jpeg import JpegParams
from grasp_guard.media.orientation import normalise
from grasp_guard.models.editor import Editor
from grasp_guard.models.zoo import DEFAULT_SET, load_editor, resolve_models
from grasp_guard.sites import resolve_site

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
# The shortest side, at the crop's scale, of an image protected whole: the SSIM window.
MIN_WHOLE_SIDE = 11
# Steps a group photo's first stage runs again once the later stages are pasted
# (PreparedImage.passes). On the crowd selfie at 100 steps no (face, size) cell changed and
# the first stage's framed DSR went 0.69 -> 0.79 for 1.4% more time; on img62 (10 steps)
# 0.31 -> 0.38 (bench/results/photos-*-refine/; later stages reach every first-stage crop
# of both, and a warm start was not yet judged at step 0). `strong` takes `balanced`'s,
# unmeasured.
REFINE_STEPS: dict[str, int] = {"fast": 0, "balanced": 25, "strong": 25}

_JPEG_MCU = 16
_SUBSAMPLING = {0: "4:4:4", 1: "4:2:0", 2: "4:2:0", -1: "4:4:4"}  # 4:2:2 modelled as 4:2:0


def site_spec(options: ProtectOptions, image: DecodedImage | None = None) -> SiteSpec:
    """What happens to the image after protection: the site's pipeline from the options
    (policy resolved), and without one, a JPEG source's own re-encode at its quality."""
    q = options.site_jpeg_quality
    # to 0.05 px, far finer than a blur's effect: each value is a batching group the
    # service times apart, and a caller must not be able to make endless new ones
    sigma = options.site_blur_sigma
    if sigma is not None:
        sigma = max(1, round(sigma * 20)) / 20
    subsampling = "4:2:0"
    if q is None and image is not None and isinstance(image.params, JpegParams):
        q = estimate_jpeg_quality(image.params.qtables[0])
        subsampling = _SUBSAMPLING.get(image.params.subsampling, "4:2:0")
    return SiteSpec(
        jpeg_quality=(q, q) if q is not None else None,
        max_side=options.site_max_side,
        blur_sigma=(sigma, sigma) if sigma is not None else None,
        subsampling=subsampling,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, eq=False)
class CropTask:
    """One face crop waiting for the defense; tasks with equal ``group_key`` batch together.

    ``site`` is what happens to the image after protection: the site's pipeline, or at
    least the re-encode of a lossy source at its own quality, which the perturbation must
    survive. ``delivery`` is the paste round trip of a crop shrunk to fit the ladder or cut
    past the image border (:func:`~grasp_guard.faces.regions.delivery_maps`), ``None`` where
    it is the identity: its perturbation is optimised as the re-cut crop carries it. ``grid_phase``
    is where the crop lies on the stored image's JPEG block grid — (row, column) offset
    modulo 16, which covers 8×8 blocks and 4:2:0 MCUs, and 1 if the image stores it
    transposed — when the site keeps the image's size and the crop its scale: the simulated
    re-encode then quantises the very blocks the real one will. ``neighbours`` are the crops
    of the same photo (``photo``, at ``index`` there) of the same size that overlap this one,
    with what this crop re-cuts of each one's perturbation
    (:func:`~grasp_guard.faces.regions.crosstalk_maps`): batched together, they are
    optimised jointly. ``budget_share`` is the share of the budget this face may spend so
    that overlapping crops of any size stay within theirs
    (:func:`~grasp_guard.faces.sharing.budget_shares`). ``context`` is the crop as re-cut
    once the crops of earlier stages (:meth:`PreparedImage.stages`) are pasted, where they
    reach into it: the loop sees their perturbation as part of this crop. ``start`` is this
    crop as an earlier run protected it, where a stage runs again: the loop goes on from it
    for at most ``steps`` steps (such crops batch only with each other).
    """

    crop: np.ndarray  # (S, S, 3) uint8
    weight: np.ndarray  # (S, S) float32 in [0, 1]: what the paste keeps (faces.paste_weights)
    preset: str
    site: SiteSpec
    image_long_side: int
    delivery: np.ndarray | None = None  # (2, S, S) row and column maps
    grid_phase: tuple[int, int, int] | None = None
    scale: float = 1.0  # crop pixels per photo pixel (below 1: shrunk to fit the ladder)
    photo: int = 0
    index: int = 0
    neighbours: tuple[tuple[int, np.ndarray], ...] = ()  # (index, (2, S, S) maps)
    budget_share: float = 1.0  # of the PSNR budget's MSE (faces.sharing.budget_shares)
    context: np.ndarray | None = None  # (S, S, 3) uint8
    start: np.ndarray | None = None  # (S, S, 3) uint8
    steps: int | None = None  # a cap on the preset's steps

    @property
    def group_key(self) -> tuple[Any, ...]:
        factor = 1.0  # without a site pipeline a crop's scale does not matter
        if self.site != SiteSpec():
            factor = round(site_factor(self.site, self.image_long_side, self.scale), 2)
        site = (self.site.jpeg_quality, self.site.subsampling, self.site.blur_sigma, factor)
        return (self.crop.shape[0], self.preset, *site, self.start is not None, self.steps)


@dataclass(frozen=True, eq=False)
class CropOutcome:
    """A protected crop and how its optimisation went."""

    protected: np.ndarray  # (S, S, 3) uint8
    iterations: int
    seconds: float  # this crop's share of the batch's wall time
    batch_size: int


@dataclass(eq=False)
class PreparedImage:
    """An upload decoded and cut into crops, waiting for its crops' outcomes."""

    data: bytes
    options: ProtectOptions
    image: DecodedImage
    boxes: list[FaceBox]
    regions: list[FaceRegion]
    tasks: list[CropTask]
    detector: str = ""  # the name of the detector that found ``boxes``
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passthrough(self) -> bool:
        """Nothing to protect: the input goes back byte-identical."""
        return not self.tasks

    def stages(self) -> list[list[int]]:
        """The crops' indices in the order they are optimised: stages run one after another,
        the crops of one stage at once (one batch per group).

        A photo's overlapping crops of one group are optimised jointly (``neighbours``);
        crops of different sizes cannot be, so a group whose crops overlap those of the
        stage before it starts a stage of its own and sees what the earlier stages pasted
        (:meth:`in_context`). Smaller crops go first (the order ``bench/overlap_probe.py``
        measured against optimising apart): a small face's crop more often lies inside a
        large one's than the other way round, so the large one, later, sees it whole. A
        photo with no such overlap has one stage.
        """
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, task in enumerate(self.tasks):
            groups.setdefault(task.group_key, []).append(i)
        overlaps = _overlaps(self.regions)
        stages: list[list[int]] = []
        for members in sorted(groups.values(), key=lambda g: self.tasks[g[0]].crop.shape[0]):
            if stages and not any(j in stages[-1] for i in members for j in overlaps[i]):
                stages[-1].extend(members)
            else:
                stages.append(list(members))
        return stages

    def passes(self, refine_steps: int | None = None,
               stages: Sequence[Sequence[int]] | None = None) -> list[tuple[list[int], int | None]]:
        """The optimisation passes over the crops, as (indices, step cap): the ``stages``
        (:meth:`stages` when ``None``) in turn at the preset's steps; then, with
        ``refine_steps`` (the preset's, ``REFINE_STEPS``, when ``None``) and several stages,
        the crops of the first that a later stage's crops reach into, with their joint
        neighbours, again for that many steps from their outcomes, seeing what the later
        stages pasted (which they could not the first time)."""
        order: list[tuple[list[int], int | None]] = [
            (list(stage), None) for stage in (self.stages() if stages is None else stages)]
        if refine_steps is None:
            refine_steps = REFINE_STEPS.get(self.options.preset, 0)
        if refine_steps <= 0 or len(order) < 2:
            return order
        later = {j for stage, _ in order[1:] for j in stage}
        overlaps = _overlaps(self.regions)
        reached = {i for i in order[0][0] if later.intersection(overlaps[i])}
        reached |= {j for i in reached for j, _ in self.tasks[i].neighbours}
        if reached:
            order.append((sorted(reached), refine_steps))
        return order

    def in_context(self, indices: Sequence[int], outcomes: Mapping[int, CropOutcome],
                   steps: int | None = None) -> list[CropTask]:
        """The tasks ``indices``, each with its ``context`` where the other crops already
        optimised (``outcomes``, by index) paste into it; a crop with an outcome of its own
        (a stage run again) starts from it, for at most ``steps`` steps."""
        tasks = [self.tasks[i] if i not in outcomes
                 else replace(self.tasks[i], start=outcomes[i].protected, steps=steps)
                 for i in indices]
        others = {i: o for i, o in outcomes.items() if i not in indices}
        if not others:
            return tasks
        crops = [others[i].protected if i in others else t.crop
                 for i, t in enumerate(self.tasks)]
        recut = extract_crops(paste(self.image.upright, self.regions, crops, weighted=False),
                              [self.regions[i] for i in indices])
        return [t if np.array_equal(r, t.crop) else replace(t, context=r)
                for t, r in zip(tasks, recut)]


def torch_device(name: str) -> torch.device:
    """The device ``name`` names (``auto``: the GPU when there is one).

    Raises:
        ConfigError: no such device, or not on this machine (CUDA without a GPU).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} is not on this machine (torch {torch.__version__} "
                          f"sees {torch.cuda.device_count()} CUDA device(s))")
    return device


class Engine:
    """The surrogate editors on one device, optimising batches of same-group crops."""

    def __init__(self, editors: Sequence[Editor], device: torch.device,
                 missing: Sequence[str] = ()) -> None:
        if not editors:
            raise ValueError("the engine needs at least one surrogate editor")
        self.editors = [e.to(device) for e in editors]
        self.device = device
        self.missing = list(missing)

    @classmethod
    def create(cls, models: Sequence[str] = (DEFAULT_SET,), device: str = "auto") -> Engine:
        """Load ``models`` from the zoo onto ``device`` (``auto``: the GPU when there is one).

        ``default`` stands for the zoo's default set; a default surrogate whose weights are
        not cached is left out with a warning (``missing``) and named in every report.
        """
        dev = torch_device(device)
        names, missing = resolve_models(models)
        if missing:
            logger.warning("default surrogate(s) %s left out: their weights are not cached "
                           "(run `grasp-guard models fetch NAME`)", ", ".join(missing))
        return cls([load_editor(name, device=dev) for name in names], dev, missing)

    @property
    def labels(self) -> list[str]:
        return [e.info.label for e in self.editors]

    def warm_up(self) -> None:
        """One tiny run so the first request does not pay for lazy initialisation."""
        crop = np.zeros((64, 64, 3), np.uint8)
        self.optimise([CropTask(crop, np.ones((64, 64), np.float32), "fast", SiteSpec(), 64)],
                      max_steps=1)

    def optimise(self, tasks: Sequence[CropTask], max_steps: int | None = None) -> list[CropOutcome]:
        """Protect crops of one group in one batched GRASP run (blocking).

        Raises:
            ValueError: the tasks are not all of one group.
        """
        keys = {t.group_key for t in tasks}
        if len(keys) != 1:
            raise ValueError(f"crops of one batch must share a group, got {sorted(map(str, keys))}")
        first = tasks[0]
        config = config_for(first.preset)
        for cap in (max_steps, first.steps):  # the group key makes first.steps every task's
            if cap is not None:
                config = config.replace(steps=min(config.steps, cap))
        transform = None
        if first.site != SiteSpec():
            transform = build_site_pipeline(first.site, first.image_long_side, seed=config.seed,
                                            crop_scale=first.scale)
            transform = transform.to(self.device)
        x = to_tensor([t.crop for t in tasks]).to(self.device)
        weight = torch.from_numpy(np.stack([t.weight for t in tasks]))[:, None].to(self.device)
        delivery = None
        if any(t.delivery is not None for t in tasks):
            delivery = torch.from_numpy(np.stack([_delivery(t) for t in tasks])).to(self.device)
        grid = None
        if transform is not None and any(t.grid_phase is not None for t in tasks):
            grid = torch.tensor([t.grid_phase or (-1, -1, 0) for t in tasks])
        slot = {(t.photo, t.index): p for p, t in enumerate(tasks)}
        crosstalk = [(p, slot[t.photo, j], torch.from_numpy(maps).to(self.device))
                     for p, t in enumerate(tasks) for j, maps in t.neighbours
                     if (t.photo, j) in slot]
        budget_share = None
        if any(t.budget_share < 1.0 for t in tasks):
            budget_share = torch.tensor([t.budget_share for t in tasks], dtype=torch.float64)
        context = None
        if any(t.context is not None for t in tasks):
            recut = [t.crop if t.context is None else t.context for t in tasks]
            context = to_tensor(recut).to(self.device) - x
        init = None
        if first.start is not None:  # the group key makes it every task's
            init = to_tensor([t.start for t in tasks]).to(self.device) - x
        result = grasp(x, self.editors, config, transform=transform, weight=weight,
                       delivery=delivery, grid=grid, crosstalk=crosstalk,
                       budget_share=budget_share, context=context, init=init)
        share = result.seconds / len(tasks)
        return [
            CropOutcome(crop, int(it), share, len(tasks))
            for crop, it in zip(from_tensor(result.images), result.iterations.tolist())
        ]

    def evaluate(self, original: Sequence[np.ndarray], protected: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Per crop and surrogate: DSR (CMUA, Ruiz) and mean distortion over its edits and
        editing resolutions; ``by_resolution`` splits them for an editor run at several sizes;
        ``dsr_framed``: CMUA DSR with the attacker's crop a few pixels over or 7% off ours
        (:func:`~grasp_guard.defense.metrics.framed_editing`); ``margin``: the smallest CMUA
        distortion of all those edits over the success threshold (> 1: every one disrupted).

        Crops of one size are evaluated together; sizes may differ between faces.
        """
        per_crop: list[dict[str, Any]] = [{} for _ in original]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, crop in enumerate(original):
            by_size.setdefault(crop.shape, []).append(i)
        for shape, indices in by_size.items():
            x = to_tensor([original[i] for i in indices]).to(self.device)
            y = to_tensor([protected[i] for i in indices]).to(self.device)
            for editor in self.editors:
                sizes = editing_resolutions(editor, shape[0])
                metrics = {res: evaluate_defense(editor, x, y, resolution=res) for res in sizes}
                framed = framed_editing(editor, x, y)
                judged = torch.cat([m.cmua_distortion for m in (*metrics.values(), framed)], 1)
                for row, i in enumerate(indices):
                    per_res = {str(res): _face_metrics(m, row) for res, m in metrics.items()}
                    summary = {k: float(np.mean([v[k] for v in per_res.values()]))
                               for k in ("dsr_cmua", "dsr_ruiz", "distortion")}
                    summary["dsr_framed"] = float(framed.cmua_success[row].double().mean())
                    summary["margin"] = float(judged[row].min()) / SUCCESS_THRESHOLD
                    if len(per_res) > 1:
                        summary["by_resolution"] = per_res
                    per_crop[i][editor.info.name] = summary
        return per_crop


def _delivery(task: CropTask) -> np.ndarray:
    """The task's (2, S, S) delivery maps, the identity where it has none."""
    if task.delivery is not None:
        return task.delivery
    return np.broadcast_to(np.eye(task.crop.shape[0], dtype=np.float32),
                           (2, *task.crop.shape[:2])).copy()


def _face_metrics(m: EditMetrics, row: int) -> dict[str, float]:
    return {
        "dsr_cmua": float(m.cmua_success[row].double().mean()),
        "dsr_ruiz": float(m.ruiz_success[row].double().mean()),
        "distortion": float(m.distortion[row].double().mean()),
    }


def prepare(
    data: bytes,
    options: ProtectOptions,
    *,
    detector: FaceDetector | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedImage:
    """Decode, find faces and cut crops (blocking CPU work).

    Raises:
        InvalidImageError, UnsupportedFormatError, ImageTooLargeError: the input (too large:
            also a whole-image protection whose square, the longest side squared, exceeds
            ``max_pixels``).
    """
    t0 = time.perf_counter()
    options = resolve_site(options, strict=False)
    image = decode(data, max_pixels=max_pixels)
    t1 = time.perf_counter()
    rgb = image.upright
    detector = detector or shared_default_detector()
    boxes = detector.detect(rgb)
    t2 = time.perf_counter()
    if boxes:
        regions = plan_regions(rgb.shape, boxes)
    elif options.on_no_face == "whole":
        regions = [whole_image_region(rgb.shape)]
        side = regions[0].crop.side
        thinnest = min(rgb.shape[:2]) * regions[0].scale
        if thinnest < MIN_WHOLE_SIDE:
            raise InvalidImageError(
                f"an image of {rgb.shape[1]} × {rgb.shape[0]} px is too small or too thin to "
                f"protect whole: each side must span at least {MIN_WHOLE_SIDE} px of its "
                f"{regions[0].bucket}-px crop")
        if side * side > max_pixels:
            # The square is worked on at full size (mirrored, then pasted back): a long thin
            # image would make arrays far past the pixel limit (48 × 41374 px: 20 GB).
            raise ImageTooLargeError(
                f"protecting the whole image works on a {side} × {side} square (its longest "
                f"side), more than the {max_pixels}-pixel limit")
    else:
        regions = []
    spec = site_spec(options, image)
    long_side = max(rgb.shape[:2])
    keeps_size = spec.max_side is None or long_side <= spec.max_side
    photo = uuid.uuid4().int  # unique across processes: a Ray replica batches many ingresses' crops
    tasks = [CropTask(c, w, options.preset, spec, long_side,
                      delivery_maps(r),
                      _grid_phase(r, image.orientation) if keeps_size and not r.downscaled
                      else None, r.scale, photo, i, _neighbours(regions, i), float(share))
             for i, (c, w, r, share) in enumerate(zip(extract_crops(rgb, regions),
                                                       paste_weights(regions), regions,
                                                       budget_shares(regions)))]
    timings = {"decode": t1 - t0, "detect": t2 - t1, "crop": time.perf_counter() - t2}
    return PreparedImage(data, options, image, boxes, regions, tasks, detector_name(detector),
                         timings)


@functools.cache
def shared_default_detector() -> FaceDetector:
    """The process's default detector (:func:`~grasp_guard.faces.choose.default_detector`),
    chosen once: weights fetched later count from the next process on."""
    return default_detector()


def detector_name(detector: FaceDetector) -> str:
    """What reports call ``detector``: its ``name``, else its class name."""
    return str(getattr(detector, "name", type(detector).__name__))


def _neighbours(regions: Sequence[FaceRegion], i: int) -> tuple[tuple[int, np.ndarray], ...]:
    """The regions of region ``i``'s size whose pasted perturbation its re-cut crop carries,
    with the maps of what it carries (crops of other sizes never share a batch)."""
    found = []
    for j, other in enumerate(regions):
        if j != i and other.bucket == regions[i].bucket and other.crop.meets(regions[i].crop):
            maps = crosstalk_maps(regions[i], other)
            if maps is not None:
                found.append((j, maps))
    return tuple(found)


def _grid_phase(region: FaceRegion, orientation: int) -> tuple[int, int, int]:
    """Where the crop lies on the stored pixels' JPEG grid, seen upright: its (row, column)
    offset modulo the largest block unit (a 4:2:0 MCU), an axis that the EXIF orientation
    mirrors counted from the far edge, and 1 if the orientation transposes (5–8)."""
    o = normalise(orientation)
    height, width = region.image_hw
    y = region.crop.y - height if o in (3, 4, 7, 8) else region.crop.y
    x = region.crop.x - width if o in (2, 3, 6, 7) else region.crop.x
    return y % _JPEG_MCU, x % _JPEG_MCU, int(o >= 5)


def finish(prepared: PreparedImage, outcomes: Sequence[CropOutcome], engine: Engine) -> tuple[bytes, dict[str, Any]]:
    """Paste the protected crops back, re-encode, and measure the output as it leaves.

    Raises:
        SizeBudgetError: the output cannot meet ``size_mode``.
    """
    options = prepared.options
    if prepared.passthrough:
        return prepared.data, passthrough_report(prepared)
    if len(outcomes) != len(prepared.tasks):
        raise ValueError(f"{len(prepared.tasks)} crops but {len(outcomes)} outcomes")
    image = prepared.image
    t0 = time.perf_counter()
    out, received, finals, gains = _encode_spending_budget(prepared, [o.protected for o in outcomes])
    t1 = time.perf_counter()
    originals = [t.crop for t in prepared.tasks]
    per_face = engine.evaluate(originals, finals)
    t2 = time.perf_counter()
    faces = []
    for region, task, final, outcome, dsr, gain in zip(prepared.regions, prepared.tasks, finals,
                                                       outcomes, per_face, gains):
        window, inside = crop_window(region), in_image_mask(region)
        faces.append({
            "box": [region.face.x, region.face.y, region.face.w, region.face.h],
            "crop": region.crop.side,
            "psnr": round(psnr(task.crop, final, inside), 2),
            "psnr_full": round(psnr(image.upright[window], received[window]), 2),
            "ssim": round(ssim(task.crop, final, inside), 4),
            "iterations": outcome.iterations,
            "budget_share": round(task.budget_share, 3),
            "budget_gain": round(gain, 3),
            "batch_size": outcome.batch_size,
            "surrogates": dsr,
        })
    timings = {**prepared.timings, "optimise": sum(o.seconds for o in outcomes),
               "encode": t1 - t0, "evaluate": t2 - t1}
    report = {
        "protected": True,
        "format": image.format,
        "faces": faces,
        "whole_image": not prepared.boxes,
        "psnr": round(psnr(image.upright, received), 2),
        "ssim": round(ssim(image.upright, received), 4),
        "dsr_cmua": _mean([s["dsr_cmua"] for f in per_face for s in f.values()]),
        "dsr_framed": _mean([s["dsr_framed"] for f in per_face for s in f.values()]),
        "bytes_in": len(prepared.data),
        "bytes_out": len(out),
        "size_ratio": round(len(out) / len(prepared.data), 4),
        "options": options.to_params(),
        "surrogates": engine.labels,
        "surrogates_missing": engine.missing,
        "detector": prepared.detector,
        "notes": list(image.notes),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    return out, report


_TOP_UP_ROUNDS = 4
_TOP_UP_TOLERANCE_DB = 0.2
_BUDGET_GAINS = (0.25, 2.0)  # the smallest and largest scale of a face's perturbation
_GAINS_SETTLED = 0.01  # a top-up round moving no gain by more than this share is the last


def _overlaps(regions: Sequence[FaceRegion]) -> list[list[int]]:
    """For each region, the other regions whose crop squares meet its own: what they paste
    can land in its crop, and counts in its PSNR."""
    return [[j for j, other in enumerate(regions) if j != i and r.crop.meets(other.crop)]
            for i, r in enumerate(regions)]


def _paste_loads(prepared: PreparedImage, protected: Sequence[np.ndarray],
                 shown: Sequence[np.ndarray]) -> np.ndarray:
    """(N, N) [k, i]: the MSE that face i's protected crop, pasted alone, puts in crop k as
    re-cut (over the photo's pixels of it), before any encode; 0 where the crops do not meet."""
    image, tasks, regions = prepared.image, prepared.tasks, prepared.regions
    originals = [t.crop for t in tasks]
    load = np.zeros((len(tasks), len(tasks)))
    for i, (crop, others) in enumerate(zip(protected, _overlaps(regions))):
        alone = [crop if j == i else original for j, original in enumerate(originals)]
        upright = paste(image.upright, regions, alone, weighted=False)
        reached = [i, *others]
        for k, final in zip(reached, extract_crops(upright, [regions[k] for k in reached])):
            load[k, i] = mse(originals[k], final, shown[k])
    return load


def _encode_spending_budget(
    prepared: PreparedImage, protected: Sequence[np.ndarray]
) -> tuple[bytes, np.ndarray, list[np.ndarray], list[float]]:
    """Paste, encode, and measure each face's crop as it leaves; then scale the faces'
    perturbations so that they spend the budget on what the site receives: up where the
    encode quantised part of them away, down where overlapping neighbours' pastes put a crop
    past it, all faces solved at once (:func:`~grasp_guard.faces.sharing.top_up_gains`). At
    most ``_TOP_UP_ROUNDS`` extra encodes, until the gains settle; the encode kept has the
    fewest decibels past the budget's tolerance, then the largest gains.

    Returns the output bytes, its decoded pixels, the re-cut face crops, and each face's gain.
    """
    tasks = prepared.tasks
    budget = config_for(prepared.options.preset).psnr_budget
    deltas = [p.astype(np.float32) - t.crop.astype(np.float32) for p, t in zip(protected, tasks)]
    gains = np.ones(len(tasks))
    out, received, finals = _paste_and_encode(prepared, deltas, gains)
    if budget is None:
        return out, received, finals, gains.tolist()
    budget_mse = 255.0 ** 2 * 10.0 ** (-budget / 10.0)
    shown = [in_image_mask(r) for r in prepared.regions]  # not the mirrored padding
    load = baseline = None
    best: tuple[tuple[float, float], bytes, np.ndarray, list[np.ndarray], np.ndarray] | None = None
    for round_ in range(_TOP_UP_ROUNDS + 1):
        if round_:
            out, received, finals = _paste_and_encode(prepared, deltas, gains)
        errors = _crop_errors(prepared, finals, shown)
        past = 10.0 * np.log10(errors.clip(min=1e-12) / budget_mse)  # dB past the budget
        rank = (float(np.sum((past - _TOP_UP_TOLERANCE_DB).clip(min=0))),
                -float(np.sum(np.log(gains))))
        if best is None or rank < best[0]:
            best = (rank, out, received, finals, gains)
        if round_ == _TOP_UP_ROUNDS or (np.abs(past) <= _TOP_UP_TOLERANCE_DB).all():
            break
        if load is None:
            load = _paste_loads(prepared, protected, shown)
            clean = _paste_and_encode(prepared, deltas, np.zeros(len(tasks)))[2]
            baseline = _crop_errors(prepared, clean, shown)
        wanted = top_up_gains(load, errors, baseline, gains, budget_mse, _BUDGET_GAINS)
        if np.allclose(wanted, gains, rtol=_GAINS_SETTLED):
            break
        gains = wanted
    _, out, received, finals, gains = best
    return out, received, finals, gains.tolist()


def _crop_errors(prepared: PreparedImage, finals: Sequence[np.ndarray],
                 shown: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) each face crop's MSE as re-cut, over the photo's pixels of it."""
    return np.array([mse(t.crop, f, inside) for t, f, inside in zip(prepared.tasks, finals, shown)])


def _paste_and_encode(prepared: PreparedImage, deltas: Sequence[np.ndarray],
                      gains: np.ndarray) -> tuple[bytes, np.ndarray, list[np.ndarray]]:
    """The photo with each face's perturbation pasted at its gain, encoded: the bytes, their
    decoded pixels and the faces' crops re-cut from them."""
    crops = [np.clip(np.rint(t.crop + g * d), 0, 255).astype(np.uint8)
             for t, d, g in zip(prepared.tasks, deltas, gains)]
    # The crops already carry their paste weights (optimised through them).
    upright = paste(prepared.image.upright, prepared.regions, crops, weighted=False)
    out = encode(prepared.image, upright, size_mode=prepared.options.size_mode)
    received = decode(out).upright
    return out, received, extract_crops(received, prepared.regions)


def protect(
    data: bytes,
    options: ProtectOptions,
    engine: Engine,
    *,
    detector: FaceDetector | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    refine_steps: int | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Protect one image: all its faces batched per crop group; see the module docstring
    (``refine_steps``: :func:`optimise_prepared`)."""
    start = time.perf_counter()
    prepared = prepare(data, options, detector=detector, max_pixels=max_pixels)
    out, report = protect_prepared(prepared, engine, refine_steps=refine_steps)
    report.setdefault("seconds", {})["total"] = round(time.perf_counter() - start, 3)
    return out, report


def protect_prepared(prepared: PreparedImage, engine: Engine, *,
                     refine_steps: int | None = None) -> tuple[bytes, dict[str, Any]]:
    """Optimise a prepared image's crops (:func:`optimise_prepared`) and finish it."""
    outcomes = optimise_prepared(prepared, engine, refine_steps=refine_steps)
    return finish(prepared, outcomes, engine)


def record_outcomes(outcomes: dict[int, CropOutcome], indices: Sequence[int],
                    optimised: Sequence[CropOutcome]) -> None:
    """Put a pass's outcomes in ``outcomes``; a crop run again counts both runs' steps and
    seconds, and keeps its first run's batch size."""
    for i, outcome in zip(indices, optimised):
        if i in outcomes:
            before = outcomes[i]
            outcome = replace(before, protected=outcome.protected,
                              iterations=before.iterations + outcome.iterations,
                              seconds=before.seconds + outcome.seconds)
        outcomes[i] = outcome


def optimise_prepared(prepared: PreparedImage, engine: Engine, *,
                      stages: Sequence[Sequence[int]] | None = None,
                      max_steps: int | None = None,
                      refine_steps: int | None = None) -> list[CropOutcome]:
    """A prepared image's crops optimised pass by pass (:meth:`PreparedImage.passes` of
    ``refine_steps`` and ``stages``), one batch per group; ``max_steps`` caps every pass."""
    outcomes: dict[int, CropOutcome] = {}
    for indices, steps in prepared.passes(refine_steps, stages):
        groups: dict[tuple[Any, ...], list[tuple[int, CropTask]]] = {}
        for i, task in zip(indices, prepared.in_context(indices, outcomes, steps)):
            groups.setdefault(task.group_key, []).append((i, task))
        for members in groups.values():
            optimised = engine.optimise([task for _, task in members], max_steps=max_steps)
            record_outcomes(outcomes, [i for i, _ in members], optimised)
    return [outcomes[i] for i in range(len(prepared.tasks))]


def passthrough_report(prepared: PreparedImage) -> dict[str, Any]:
    """The report of an image with nothing to protect: it goes back byte-identical."""
    return {
        "protected": False,
        "reason": "no face found",
        "detector": prepared.detector,
        "faces": [],
        "bytes_in": len(prepared.data),
        "bytes_out": len(prepared.data),
        "size_ratio": 1.0,
        "options": prepared.options.to_params(),
        "seconds": {k: round(v, 3) for k, v in prepared.timings.items()},
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None
