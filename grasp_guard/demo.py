"""The demo photo, a picture of what protection does to an editor's output, the EXIF it kept."""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
import piexif
from PIL import Image

from grasp_guard.defense.metrics import editor_input
from grasp_guard.faces.regions import FaceRegion, extract_crops, plan_regions, to_tensor
from grasp_guard.media import decode
from grasp_guard.pipeline import Engine, shared_default_detector

# The EXIF tags the demo reports on: where each lives in piexif's dictionary.
EXIF_TAGS = {
    "Make": ("0th", piexif.ImageIFD.Make),
    "Model": ("0th", piexif.ImageIFD.Model),
    "DateTimeOriginal": ("Exif", piexif.ExifIFD.DateTimeOriginal),
}


def sample_photo(quality: int = 92) -> bytes:
    """scikit-image's astronaut (public domain, NASA) as a camera-like JPEG with EXIF."""
    from skimage import data

    rgb = data.astronaut()
    thumb = io.BytesIO()
    Image.fromarray(rgb).resize((160, 160)).save(thumb, "JPEG", quality=80)
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"GRASP Guard demo", piexif.ImageIFD.Model: b"astronaut",
                piexif.ImageIFD.Orientation: 1},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"1994:01:01 12:00:00"},
        "1st": {piexif.ImageIFD.JPEGInterchangeFormat: 0,
                piexif.ImageIFD.JPEGInterchangeFormatLength: 0},
        "thumbnail": thumb.getvalue(),
    })
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def comparison(original: bytes, protected: bytes, regions: list[FaceRegion],
               engine: Engine) -> np.ndarray:
    """Rows per face: the crop, protected crop, ×20 difference, then each edit clean | protected.

    Returns:
        (H, W, 3) uint8 RGB picture.
    """
    before = decode(original).upright
    after = decode(protected).upright
    rows = []
    size = 128
    for cb, ca in zip(extract_crops(before, regions), extract_crops(after, regions)):
        delta = ca.astype(np.int16) - cb.astype(np.int16)
        diff = np.clip(128 + 20 * delta, 0, 255).astype(np.uint8)
        tiles = [cb, ca, diff]
        for editor in engine.editors:
            res = editor.info.resolution
            x = editor_input(to_tensor([cb, ca]).to(engine.device), res)
            cond = editor.conditions().to(engine.device)
            for c in cond:
                out = editor(x, c.expand(2, -1)).detach().cpu()
                pics = ((out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
                tiles += [pics[0], pics[1]]
        rows.append(np.concatenate(
            [cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in tiles], axis=1))
    return np.concatenate(rows, axis=0)


def face_regions(photo: bytes) -> list[FaceRegion]:
    """The crops protection cuts from ``photo``: faces found by the default detector."""
    upright = decode(photo).upright
    return plan_regions(upright.shape, shared_default_detector().detect(upright))


def metadata_report(original: bytes, received: bytes) -> dict[str, Any]:
    """What became of the original's EXIF on the way: the :data:`EXIF_TAGS` kept or lost,
    and its thumbnail.

    Returns:
        ``{"kept": {tag: value}, "lost": [tag], "thumbnail": state}``; the thumbnail is
        ``regenerated`` (from the protected pixels, as it must be), ``unchanged`` (an
        unprotected copy of the face went out), ``removed``, or ``absent`` from the original.
    """
    before, after = _exif(original), _exif(received)
    tags_before, tags_after = _tags(before), _tags(after)
    thumb_before, thumb_after = before.get("thumbnail"), after.get("thumbnail")
    if not thumb_before:
        thumbnail = "absent"
    elif not thumb_after:
        thumbnail = "removed"
    else:
        thumbnail = "unchanged" if thumb_after == thumb_before else "regenerated"
    return {"kept": {k: v for k, v in tags_before.items() if tags_after.get(k) == v},
            "lost": [k for k, v in tags_before.items() if tags_after.get(k) != v],
            "thumbnail": thumbnail}


def _exif(photo: bytes) -> dict[str, Any]:
    try:
        return piexif.load(photo)
    except ValueError:  # piexif's InvalidImageDataError: not a JPEG, WebP or TIFF
        return {}


def _tags(exif: dict[str, Any]) -> dict[str, str]:
    found = {name: exif.get(ifd, {}).get(tag) for name, (ifd, tag) in EXIF_TAGS.items()}
    return {name: value.decode("ascii", "replace").rstrip("\0")
            for name, value in found.items() if isinstance(value, bytes)}
