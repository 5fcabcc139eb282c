"""`grasp-guard demo`: the service, the proxy and the demo site, and one upload through them."""

from __future__ import annotations

import io
import json
import re
import socket
from pathlib import Path

import numpy as np
import piexif
import pytest
from grasp_sdk import parse_policy
from PIL import Image

from grasp_guard.cli import main
from grasp_guard.cli.demo_cmd import POLICY, _summary
from grasp_guard.demo import metadata_report, sample_photo
from grasp_guard.demo_site import RECEIVED_PATH, UPLOAD_FIELD, UPLOAD_PATH
from grasp_guard.verify import verdict


def test_the_demo_policy_protects_the_demo_sites_uploads_only() -> None:
    policy = parse_policy(POLICY.format(preset="fast", path=UPLOAD_PATH, field=UPLOAD_FIELD))
    rule = policy.match("POST", f"https://localhost:4321{UPLOAD_PATH}")
    assert rule is not None and rule.on_failure == "block" and rule.fields == (UPLOAD_FIELD,)
    assert rule.preset == "fast"
    assert policy.match("GET", f"https://localhost:4321{RECEIVED_PATH}") is None
    assert policy.match("POST", "https://example.com/upload") is None


def test_metadata_report_tells_kept_tags_from_lost_ones() -> None:
    photo = sample_photo()
    assert metadata_report(photo, photo) == {
        "kept": {"Make": "GRASP Guard demo", "Model": "astronaut",
                 "DateTimeOriginal": "1994:01:01 12:00:00"},
        "lost": [], "thumbnail": "unchanged"}
    stripped = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(stripped, "JPEG")
    assert metadata_report(photo, stripped.getvalue()) == {
        "kept": {}, "lost": ["Make", "Model", "DateTimeOriginal"], "thumbnail": "removed"}


def _report(dsr: float, framed: float, preset: str = "fast",
            second: tuple[float, float] | None = None) -> dict[str, object]:
    """A demo report of one face; ``second``: a second surrogate's DSR and framed DSR."""
    edits = {"reference": (dsr, framed), **({"cyclegan-vintage": second} if second else {})}
    surrogates = {name: {"dsr_cmua": d, "dsr_ruiz": d, "dsr_framed": f, "distortion": 0.1}
                  for name, (d, f) in edits.items()}
    mean = sum(d for d, _ in edits.values()) / len(edits)
    mean_framed = sum(f for _, f in edits.values()) / len(edits)
    return {"upload": {"bytes_received": 10, "bytes_sent": 10, "preset": preset},
            "faces": [{"box": [0, 0, 10, 10], "psnr": 40.0, "surrogates": surrogates}],
            "psnr": 45.0, "ssim": 0.99,
            "verdict": verdict(*(v for pair in edits.values() for v in pair)),
            "dsr_cmua": mean, "dsr_ruiz": mean, "dsr_framed": mean_framed,
            "surrogates": list(edits), "metadata": {"kept": {}, "lost": [], "thumbnail": "none"}}


def test_the_summary_says_when_the_protection_holds_at_our_crop_only() -> None:
    only_ours = _summary(_report(1.0, 0.06), changed=True)
    assert "verdict: partially protected" in only_ours and "--preset balanced" in only_ours
    assert "--preset balanced" not in _summary(_report(1.0, 0.9), changed=True)
    # already on the framing-robust preset: no advice to switch to it
    balanced = _summary(_report(1.0, 0.75, preset="balanced"), changed=True)
    assert "our own crop of the face only" in balanced and "--preset" not in balanced
    # one editor at our crop only: the framed mean (0.85) hid it; the verdict does not
    mixed = _summary(_report(1.0, 1.0, preset="balanced", second=(1.0, 0.7)), changed=True)
    assert "verdict: partially protected" in mixed and "our own crop of the face only" in mixed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_demo_uploads_the_sample_through_the_proxy(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # the plumbing, not the protection: the quick preset
    assert main(["demo", "--out", str(tmp_path), "--preset", "fast"]) == 0
    out = capsys.readouterr().out

    for name in ("original.jpg", "received.jpg", "comparison.png", "report.json",
                 "service.log", "proxy.log"):
        assert (tmp_path / name).stat().st_size > 0, name
    original = (tmp_path / "original.jpg").read_bytes()
    received = (tmp_path / "received.jpg").read_bytes()
    report = json.loads((tmp_path / "report.json").read_text())
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float32)
    after = np.asarray(Image.open(io.BytesIO(received)).convert("RGB"), dtype=np.float32)
    assert after.shape == before.shape
    (face,) = report["faces"]
    x, y, w, h = face["box"]
    change = np.abs(after - before)[y:y + h, x:x + w].mean()
    assert change > 0.5, f"the face barely changed on the way (mean |diff| {change:.2f})"
    assert piexif.load(received)["0th"][piexif.ImageIFD.Make] == b"GRASP Guard demo"
    assert report["upload"]["status"] == 200 and report["metadata"]["thumbnail"] == "regenerated"

    assert "reference surrogate trained in this repo" in out
    assert "EXIF kept: Make 'GRASP Guard demo'" in out
    assert "grasp-guard demo --serve" in out and "grasp-guard proxy --with-service" in out
    # Every child is stopped by the time the command returns.
    for port in re.findall(r"http://127\.0\.0\.1:(\d+)", out.split("\n")[0]):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(port)), 1):
            pass
