"""Crop geometry around detected faces, and the feathered paste-back of protected crops.

A face region is a square crop framed the way the editors' training data is framed, grown to
one of a few fixed sizes (``BUCKETS``) so that crops from many images stack into one batch.
The defense optimises a perturbation on each crop at the crop's own resolution; ``paste``
adds that perturbation back to the image under a feathered mask that is 1 over the face box
and 0 at the crop border, so that no pixel outside the crops ever changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from grasp_guard.faces.detect import FaceBox, check_rgb

logger = logging.getLogger(__name__)

BUCKETS: tuple[int, ...] = (64, 96, 128, 160, 192, 256, 320, 384, 512)
"""Crop sides, in pixels. Neighbours differ by at most 1.5× (1.25× from 128 up), so growing
a crop to its bucket adds little context, and nine sizes keep batches full."""

CELEBA_CONTEXT = 2.0
"""Crop side over Haar face-box side that reproduces the CelebA editors' framing.

CelebA's aligned images (178 × 218) put the eyes about 39 px apart at row ≈ 111; StarGAN
centre-crops 178 × 178 (rows 20–198), AttGAN 170 × 170. So the editors see a square about
4.56 (StarGAN) or 4.36 (AttGAN) eye distances wide, with the eyes at ≈ 0.51 of its height.
OpenCV's frontal Haar box is about 2.2 eye distances wide (measured on
``skimage.data.astronaut``: eyes 0.47 of the box apart, at 0.37 of its height), so the
crop side is ≈ 2.05 (StarGAN) or 1.96 (AttGAN) box sides: 2.0 serves both."""

CELEBA_SHIFT_UP = 0.15
"""How far the crop centre sits above the face-box centre, in face-box sides.

Eyes at 0.37 of the box and at 0.51 of a 2.0× crop put the crop centre
0.5 − 0.37 + 0.01 · 2.0 ≈ 0.15 box sides above the box centre: the crop then holds
0.65 box sides of forehead and hair above the box and 0.35 of chin below it, as CelebA does."""


@dataclass(frozen=True)
class Square:
    """A square in pixels: columns ``x``..``x + side``, rows ``y``..``y + side``."""

    x: int
    y: int
    side: int

    @property
    def x1(self) -> int:
        return self.x + self.side

    @property
    def y1(self) -> int:
        return self.y + self.side

    def meets(self, other: Square) -> bool:
        """True when the two squares share at least one pixel."""
        return self.x < other.x1 and other.x < self.x1 and self.y < other.y1 and other.y < self.y1


@dataclass(frozen=True)
class FaceRegion:
    """Where one face's crop comes from and how it is sized.

    Attributes:
        face: the face box, cut to the image, in image coordinates; the feathered paste mask
            is 1 over it.
        crop: the crop square in image coordinates. It lies inside the image unless the image
            is smaller than the crop along an axis; then it spans the whole axis and the part
            outside is filled by mirroring the image (never pasted back).
        bucket: the side of the crop array handed to the defense, one of the ladder.
        frame: the editor-framed square (CelebA-like) inside the crop array, in crop-array
            pixels; the whole crop when the crop was not grown to its bucket. A defense that
            wants the editors' exact framing crops this before resizing to their input.
        image_hw: (height, width) of the image the region belongs to.
    """

    face: FaceBox
    crop: Square
    bucket: int
    frame: Square
    image_hw: tuple[int, int]

    @property
    def scale(self) -> float:
        """Crop-array pixels per image pixel: 1, or below 1 when the crop was downscaled."""
        return self.bucket / self.crop.side

    @property
    def downscaled(self) -> bool:
        """True when the crop is larger than the top bucket and was shrunk to it."""
        return self.crop.side > self.bucket


def snap_to_bucket(side: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The smallest bucket holding ``side`` pixels; the largest bucket when none does."""
    for b in sorted(buckets):
        if b >= side:
            return b
    return max(buckets)


def _place(ideal: float, side: int, length: int, keep: tuple[int, int] | None = None) -> int:
    """Start of a ``side``-long span near ``ideal`` that holds the span ``keep`` (when given)
    and lies inside [0, length) when ``side`` ≤ ``length``, else covers all of it.

    Moving a span that holds ``keep`` toward the inside of [0, length) keeps holding it,
    since ``keep`` lies inside, so the second clamp never undoes the first."""
    start = round(ideal)
    if keep is not None:
        start = min(max(start, keep[1] - side), keep[0])
    return min(max(start, min(0, length - side)), max(0, length - side))


def plan_regions(
    image_shape: Sequence[int],
    boxes: Sequence[FaceBox],
    *,
    context: float = CELEBA_CONTEXT,
    shift_up: float = CELEBA_SHIFT_UP,
    buckets: Sequence[int] = BUCKETS,
) -> list[FaceRegion]:
    """Crop squares around face boxes, framed like the editors' training crops.

    Each face box (side s = its longer side) becomes a square of side ``context`` · s
    centred ``shift_up`` · s above the box centre (see ``CELEBA_CONTEXT`` and
    ``CELEBA_SHIFT_UP`` for the derivation). That square is then grown about its centre to
    the smallest bucket that holds it, taking more real pixels (never resampling). A square
    larger than the top bucket keeps its size and is downscaled to the top bucket on
    extraction. Near a border the square is shifted into the image rather than padded, so
    the defense only ever sees and perturbs real pixels; only an image smaller than the
    crop along an axis is padded, by mirroring.

    Args:
        image_shape: (H, W) or (H, W, C).
        boxes: face boxes in image coordinates, e.g. from a ``FaceDetector``.
        context: crop side over face side, ≥ 1 + 2 · |shift_up| so the crop holds the box.
        shift_up: upward shift of the crop centre, in face sides.
        buckets: the allowed crop sides.

    Returns:
        One region per box, in the order of ``boxes``.

    Raises:
        ValueError: a box lies outside the image, or ``context``/``buckets`` are invalid.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    if context < 1 + 2 * abs(shift_up):
        raise ValueError(f"context must be >= 1 + 2·|shift_up| = {1 + 2 * abs(shift_up)}, "
                         f"got {context}")
    if not buckets or min(buckets) < 8:
        raise ValueError(f"buckets must be sides of at least 8 pixels, got {buckets}")
    top = max(buckets)
    regions = []
    for box in boxes:
        face = box.clip(height, width)
        if face is None:
            raise ValueError(f"face box {box} lies outside the {width}x{height} image")
        s = max(face.w, face.h)
        framed = max(1, round(context * s))
        bucket = snap_to_bucket(framed, buckets)
        side = framed if framed > top else bucket
        cx = face.x + face.w / 2
        cy = face.y + face.h / 2 - shift_up * s
        crop = Square(
            _place(cx - side / 2, side, width, (face.x, face.x1)),
            _place(cy - side / 2, side, height, (face.y, face.y1)),
            side,
        )
        scale = bucket / side
        frame_side = min(bucket, round(framed * scale))
        frame = Square(
            _place((cx - framed / 2 - crop.x) * scale, frame_side, bucket),
            _place((cy - framed / 2 - crop.y) * scale, frame_side, bucket),
            frame_side,
        )
        regions.append(FaceRegion(face, crop, bucket, frame, (height, width)))
        if side > bucket:
            logger.debug("face %s: %d px crop downscaled to %d", face, side, bucket)
    return regions


def whole_image_region(
    image_shape: Sequence[int], buckets: Sequence[int] = BUCKETS
) -> FaceRegion:
    """The whole image as one region (``on_no_face=whole``).

    The crop is the square of the longer side, centred, the short axis padded by mirroring,
    grown to a bucket or downscaled to the top bucket. Its face box is the whole image, so
    the paste mask is 1 over every pixel.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    longest = max(height, width)
    bucket = snap_to_bucket(longest, buckets)
    side = max(longest, bucket)
    crop = Square(round((width - side) / 2), round((height - side) / 2), side)
    return FaceRegion(
        FaceBox(0, 0, width, height, score=0.0), crop, bucket, Square(0, 0, bucket),
        (height, width),
    )


def _take(rgb: np.ndarray, square: Square) -> np.ndarray:
    """The pixels under ``square``, mirrored where it extends beyond the image."""
    height, width = rgb.shape[:2]
    x0, y0 = max(square.x, 0), max(square.y, 0)
    x1, y1 = min(square.x1, width), min(square.y1, height)
    part = rgb[y0:y1, x0:x1]
    pad = ((y0 - square.y, square.y1 - y1), (x0 - square.x, square.x1 - x1), (0, 0))
    if any(p for axis in pad for p in axis):
        part = np.pad(part, pad, mode="symmetric")
    return np.ascontiguousarray(part)


def extract_crops(rgb: np.ndarray, regions: Sequence[FaceRegion]) -> list[np.ndarray]:
    """The crop of each region: (bucket, bucket, 3) uint8 squares.

    Crops within the ladder are exact copies of image pixels; larger ones are area-averaged
    down to the top bucket.
    """
    check_rgb(rgb)
    crops = []
    for region in regions:
        _check_region(rgb, region)
        crop = _take(rgb, region.crop)
        if region.downscaled:
            crop = cv2.resize(crop, (region.bucket, region.bucket), interpolation=cv2.INTER_AREA)
        crops.append(crop)
    return crops


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _axis_weight(
    pos: np.ndarray, crop0: int, crop1: int, face0: int, face1: int, length: int, feather: float
) -> np.ndarray:
    """Paste weight along one axis at image positions ``pos`` (pixel indices, may be
    fractional): 0 outside the crop's in-image span, a smooth ramp over the outer
    ``feather`` share of the margin on each side inside the image, 1 elsewhere. A side on
    the image border gets no ramp: there is no neighbour pixel to blend with."""
    first, last = max(crop0, 0), min(crop1, length) - 1
    weight = np.where((pos >= first) & (pos <= last), 1.0, 0.0)
    ramp = feather * (face0 - first)
    if crop0 > 0 and ramp > 0:
        weight = np.minimum(weight, _smoothstep((pos - first) / ramp))
    ramp = feather * (last - (face1 - 1))
    if crop1 < length and ramp > 0:
        weight = np.minimum(weight, _smoothstep((last - pos) / ramp))
    return weight


def _mask(region: FaceRegion, xs: np.ndarray, ys: np.ndarray, feather: float) -> np.ndarray:
    height, width = region.image_hw
    c, f = region.crop, region.face
    wx = _axis_weight(xs, c.x, c.x1, f.x, f.x1, width, feather)
    wy = _axis_weight(ys, c.y, c.y1, f.y, f.y1, height, feather)
    return (wy[:, None] * wx[None, :]).astype(np.float32)


def _distance(region: FaceRegion, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Chebyshev distance of image positions from the face box's centre, in face sides:
    at most 0.5 inside the box."""
    f = region.face
    dx = np.abs(xs - (f.x + f.w / 2 - 0.5)) / f.w
    dy = np.abs(ys - (f.y + f.h / 2 - 0.5)) / f.h
    return np.maximum(dy[:, None], dx[None, :]).astype(np.float32)


def _owners(regions: Sequence[FaceRegion], xs: np.ndarray, ys: np.ndarray,
            feather: float) -> tuple[np.ndarray, np.ndarray]:
    """Who gets each image position of the grid ``ys`` × ``xs`` (ascending) when crops
    overlap: the region of highest paste weight, then of the nearest face centre, then the
    earlier one. Returns that weight and the region's index (-1 where no region reaches)."""
    best = np.zeros((len(ys), len(xs)), np.float32)
    nearest = np.full(best.shape, np.inf, np.float32)
    owner = np.full(best.shape, -1)
    for i, region in enumerate(regions):
        c = region.crop
        cols = slice(*np.searchsorted(xs, (c.x - 1, c.x1)))
        rows = slice(*np.searchsorted(ys, (c.y - 1, c.y1)))
        weight = _mask(region, xs[cols], ys[rows], feather)
        distance = _distance(region, xs[cols], ys[rows])
        wins = (weight > 0) & ((weight > best[rows, cols])
                               | ((weight == best[rows, cols]) & (distance < nearest[rows, cols])))
        best[rows, cols][wins] = weight[wins]
        nearest[rows, cols][wins] = distance[wins]
        owner[rows, cols][wins] = i
    return best, owner


def _check_feather(feather: float) -> None:
    if not 0 <= feather <= 1:
        raise ValueError(f"feather must be in [0, 1], got {feather}")


def paste_weights(regions: Sequence[FaceRegion], feather: float = 0.5) -> list[np.ndarray]:
    """What ``paste`` keeps of each crop's perturbation at each crop-array pixel: its
    :func:`feather_mask` where the region owns the pixel, 0 where another region does.

    A defense that multiplies each crop's perturbation by this mask optimises exactly what
    is pasted, also where crops overlap (a group photo: a large face's crop covers its
    neighbours' faces). Alone, a region's paste weights are its feather mask.
    """
    _check_feather(feather)
    out = []
    for i, region in enumerate(regions):
        weight, owner = _owners(regions, *_pixel_centres(region), feather)
        out.append(np.where(owner == i, weight, np.float32(0.0)))
    return out


def _pixel_centres(region: FaceRegion) -> tuple[np.ndarray, np.ndarray]:
    """Image-space x and y of each crop-array column's and row's pixel centre."""
    pos = (np.arange(region.bucket) + 0.5) / region.scale - 0.5
    return region.crop.x + pos, region.crop.y + pos


def feather_mask(region: FaceRegion, feather: float = 0.5) -> np.ndarray:
    """The paste weight of each crop-array pixel: (bucket, bucket) float32 in [0, 1].

    ``paste`` scales a crop's perturbation by this weight (evaluated at image resolution),
    so a defense that multiplies its perturbation by this mask optimises what is pasted.

    Args:
        region: the region.
        feather: share of the margin between face box and crop border that ramps from 0 to
            1; 0 gives a hard edge at the crop border.
    """
    _check_feather(feather)
    return _mask(region, *_pixel_centres(region), feather)


def paste(
    rgb: np.ndarray,
    regions: Sequence[FaceRegion],
    protected_crops: Sequence[np.ndarray],
    *,
    feather: float = 0.5,
    weighted: bool = True,
) -> np.ndarray:
    """Add each protected crop's perturbation back into the image, inside its region only.

    The perturbation is the protected crop minus the crop ``extract_crops`` takes from
    ``rgb``. A downscaled crop's perturbation is upscaled bilinearly to the crop's image
    size: it then carries no detail finer than the top bucket's pixel, which costs little
    against editors that see a face at 128–256 px, but its 8-bit rounding is redone at full
    size, so the pasted pixels differ from the protected crop by up to ±1 beyond the
    resampling itself. Where the face box's weight is 1 and the crop was not downscaled,
    the pasted pixels equal the protected crop exactly.

    Overlapping regions: each pixel takes the perturbation of the region whose mask weight
    is highest there (on a tie, the region whose face centre is nearer in face sides, then
    the earlier region), times that weight. So the perturbation never exceeds any crop's
    own budget (sums would), each face box keeps its own optimised perturbation (a small
    face inside a large face's crop included), and the weight envelope stays continuous.
    :func:`paste_weights` is what each crop keeps.

    Args:
        rgb: the original image, (H, W, 3) uint8.
        regions: the regions the crops were extracted with.
        protected_crops: one (bucket, bucket, 3) uint8 array per region.
        feather: see ``feather_mask``.
        weighted: ``False`` where the crops already carry their :func:`paste_weights` (a
            defense optimised through them): each pixel then takes its owner's perturbation
            whole, the owners being those of ``paste_weights`` at ``feather``.

    Returns:
        A new (H, W, 3) uint8 image; pixels outside every crop are byte-identical to ``rgb``.
    """
    check_rgb(rgb)
    _check_feather(feather)
    if len(regions) != len(protected_crops):
        raise ValueError(f"{len(regions)} regions but {len(protected_crops)} protected crops")
    out = rgb.copy()
    if not regions:
        return out
    height, width = rgb.shape[:2]
    spans = [_in_image(r.crop, height, width) for r in regions]
    bx0, by0 = min(s[0] for s in spans), min(s[1] for s in spans)
    bx1, by1 = max(s[2] for s in spans), max(s[3] for s in spans)
    weight, owner = _owners(regions, np.arange(bx0, bx1), np.arange(by0, by1), feather)
    if not weighted:
        weight = (owner >= 0).astype(np.float32)
    delta = np.zeros((by1 - by0, bx1 - bx0, 3), np.float32)
    for i, (region, original, protected, (x0, y0, x1, y1)) in enumerate(zip(
        regions, extract_crops(rgb, regions), protected_crops, spans
    )):
        if protected.shape != original.shape or protected.dtype != np.uint8:
            raise ValueError(f"protected crop must be {original.shape} uint8, "
                             f"got {protected.shape} {protected.dtype}")
        d = protected.astype(np.float32) - original.astype(np.float32)
        if region.downscaled:
            d = cv2.resize(d, (region.crop.side,) * 2, interpolation=cv2.INTER_LINEAR)
        d = d[y0 - region.crop.y: y1 - region.crop.y, x0 - region.crop.x: x1 - region.crop.x]
        window = (slice(y0 - by0, y1 - by0), slice(x0 - bx0, x1 - bx0))
        wins = owner[window] == i
        delta[window][wins] = weight[window][wins][:, None] * d[wins]
    window = out[by0:by1, bx0:bx1]
    out[by0:by1, bx0:bx1] = np.clip(np.rint(window + delta), 0, 255).astype(np.uint8)
    return out


def round_trip_matrix(bucket: int, side: int, start: int = 0,
                      length: int | None = None) -> np.ndarray:
    """The (bucket, bucket) matrix M of one axis of the paste round trip: ``paste`` upscales a
    crop's perturbation bilinearly to ``side`` pixels when the crop was shrunk from that, and
    ``extract_crops`` cuts the image again — mirrored where the crop, ``start``..``start + side``
    on an axis of ``length`` pixels, runs past it, the perturbation with it — and area-averages
    it back to ``bucket``. Each step is separable, so a perturbation δ comes back as
    M_rowsᵀ δ M_columns (row i of M is the round trip of the unit vector eᵢ; a row of the
    padding is zero, as the paste drops it). The finest checkerboard of a shrunk crop keeps a
    quarter of its amplitude."""
    length = start + side if length is None else length
    return _transfer_matrix((bucket, side, start), (bucket, side, start), length)


def _transfer_matrix(source: tuple[int, int, int], target: tuple[int, int, int],
                     length: int) -> np.ndarray:
    """One axis of what the ``target`` crop re-cuts of the ``source`` crop's pasted
    perturbation: (source bucket, target bucket), each crop given as (bucket, side, start)
    on an axis of ``length`` image pixels (see :func:`round_trip_matrix`)."""
    s_bucket, s_side, s_start = source
    t_bucket, t_side, t_start = target
    eye = np.eye(s_bucket, dtype=np.float32)
    up = eye if s_side == s_bucket else cv2.resize(eye, (s_side, s_bucket),
                                                   interpolation=cv2.INTER_LINEAR)
    first, last = max(t_start, 0), min(t_start + t_side, length)
    # the image pixel under each target position (mirrored past the border), in source terms
    under = np.pad(np.arange(first, last), (first - t_start, t_start + t_side - last),
                   mode="symmetric") - s_start
    pasted = (under >= 0) & (under < s_side)
    recut = np.zeros((s_bucket, t_side), np.float32)
    recut[:, pasted] = up[:, under[pasted]]
    return recut if t_side == t_bucket else cv2.resize(recut, (t_bucket, s_bucket),
                                                       interpolation=cv2.INTER_AREA)


def delivery_maps(region: FaceRegion) -> np.ndarray | None:
    """The region's paste round trip as (2, bucket, bucket) row and column matrices
    (:func:`round_trip_matrix`), or ``None`` where it is the identity: a crop inside the image
    at its own size."""
    height, width = region.image_hw
    c = region.crop
    if not region.downscaled and _in_image(c, height, width) == (c.x, c.y, c.x1, c.y1):
        return None
    return np.stack([round_trip_matrix(region.bucket, c.side, c.y, height),
                     round_trip_matrix(region.bucket, c.side, c.x, width)])


def crosstalk_maps(target: FaceRegion, source: FaceRegion) -> np.ndarray | None:
    """What ``target``'s re-cut crop carries of ``source``'s pasted perturbation, where their
    crops overlap: (2, source bucket, target bucket) row and column matrices R, C, so that a
    pasted source perturbation δ (its paste weights applied) reaches the target crop as
    Rᵀ δ C; ``None`` where none of it does. Overlapping faces are then optimised knowing each
    other's perturbation (a couple's crops can share half their pixels)."""
    height, width = target.image_hw
    s, t = source.crop, target.crop
    rows = _transfer_matrix((source.bucket, s.side, s.y), (target.bucket, t.side, t.y), height)
    columns = _transfer_matrix((source.bucket, s.side, s.x), (target.bucket, t.side, t.x), width)
    if not rows.any() or not columns.any():
        return None
    return np.stack([rows, columns])


def in_image_mask(region: FaceRegion) -> np.ndarray:
    """Which crop-array pixels show the image rather than the mirrored padding past its
    border: (bucket, bucket) bool, by where each pixel centre lies in the image."""
    height, width = region.image_hw
    xs, ys = _pixel_centres(region)
    return (((ys >= -0.5) & (ys < height - 0.5))[:, None]
            & ((xs >= -0.5) & (xs < width - 0.5))[None, :])


def _in_image(square: Square, height: int, width: int) -> tuple[int, int, int, int]:
    return max(square.x, 0), max(square.y, 0), min(square.x1, width), min(square.y1, height)


def crop_window(region: FaceRegion) -> tuple[slice, slice]:
    """The rows and columns of the image under the region's crop square (clipped to it)."""
    x0, y0, x1, y1 = _in_image(region.crop, *region.image_hw)
    return slice(y0, y1), slice(x0, x1)


def _check_region(rgb: np.ndarray, region: FaceRegion) -> None:
    if rgb.shape[:2] != region.image_hw:
        raise ValueError(f"region planned for an image of (H, W) = {region.image_hw}, "
                         f"got {rgb.shape[:2]}")


def to_tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack same-size uint8 (S, S, 3) crops into a float32 (N, 3, S, S) tensor in [0, 1]."""
    if not crops:
        raise ValueError("no crops to stack")
    shapes = {c.shape for c in crops}
    if len(shapes) != 1 or any(c.dtype != np.uint8 for c in crops):
        raise ValueError(f"crops must share one (S, S, 3) uint8 shape, got {sorted(shapes)}")
    batch = torch.from_numpy(np.stack(crops))
    return batch.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def from_tensor(batch: torch.Tensor) -> list[np.ndarray]:
    """Quantise a (N, 3, S, S) tensor in [0, 1] to a list of uint8 (S, S, 3) crops.

    Values are clamped to [0, 1] and rounded to the nearest of 256 levels.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, S, S) tensor, got {tuple(batch.shape)}")
    q = batch.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round()
    arr = q.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a) for a in arr]
