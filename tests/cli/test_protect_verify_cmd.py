"""`grasp-guard protect`, `verify` and `demo` run in-process through `main`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from grasp_guard.cli import main
from grasp_guard.demo import sample_photo


def _strict(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    (folder / "face.jpg").write_bytes(sample_photo())
    (folder / "broken.jpg").write_bytes(sample_photo()[:300])
    return folder


@pytest.fixture(scope="module")
def protected_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, list]:
    out = tmp_path_factory.mktemp("out")
    report = out / "report.json"
    status = main(["protect", str(photos), "-o", str(out / "protected"), "--preset", "fast",
                   "--report", str(report), "--device", "cpu"])
    return status, out, json.loads(report.read_text())


def test_folder_run_protects_what_it_can_and_fails_loudly(protected_run: tuple[int, Path, list]) -> None:
    status, out, reports = protected_run
    assert status == 1  # one image failed
    by_name = {Path(r["input"]).name: r for r in reports}
    assert "error" in by_name["broken.jpg"]
    assert not (out / "protected" / "broken.jpg").exists()
    face = by_name["face.jpg"]
    assert face["protected"] and len(face["faces"]) == 1
    Image.open(out / "protected" / "face.jpg").verify()


def test_never_overwrites_without_permission(photos: Path) -> None:
    src = photos / "face.jpg"
    before = src.read_bytes()
    assert main(["protect", str(src), "-o", str(src), "--preset", "fast"]) == 1
    assert src.read_bytes() == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_folder_no_file_can_be_made_in_is_refused_before_any_work(
        photos: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc takes no new file: found once the whole protection had run, before
    def no_engine(*_: object) -> None:
        raise AssertionError("the engine was loaded")

    monkeypatch.setattr("grasp_guard.cli.protect_cmd.engine_from_args", no_engine)
    assert main(["protect", str(photos / "face.jpg"), "-o", "/proc/grasp-guard/out.jpg"]) == 2
    assert "cannot write the outputs in /proc/grasp-guard" in capsys.readouterr().err


def test_unknown_site_is_an_error(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protect", str(photos / "face.jpg"), "-o", str(tmp_path / "x.jpg"),
                 "--site", "no-such-site"]) == 1
    assert "no-such-site" in capsys.readouterr().err


def test_verify_reports_protection_and_its_absence(
    protected_run: tuple[int, Path, list], photos: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, reports = protected_run
    original = photos / "face.jpg"
    received = tmp_path / "received.jpg"
    Image.open(out / "protected" / "face.jpg").save(received, "JPEG", quality=95)
    capsys.readouterr()
    assert main(["verify", str(original), str(received), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["faces"]) == 1 and 0 <= result["dsr_cmua"] <= 1
    assert result["psnr"] < 60

    # On the file exactly as protect wrote it, verify measures what protect reported.
    assert main(["verify", str(original), str(out / "protected" / "face.jpg"), "--json"]) == 0
    exact = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    face = next(r for r in reports if r["input"].endswith("face.jpg"))["faces"][0]
    assert exact["faces"][0]["surrogates"] == face["surrogates"]

    # A site's crop (24 px off the right): located in the original, the face found there.
    cropped = tmp_path / "cropped.png"
    protected = Image.open(out / "protected" / "face.jpg")
    protected.crop((0, 0, protected.width - 24, protected.height)).save(cropped, "PNG")
    assert main(["verify", str(original), str(cropped), "--json"]) == 0
    cut = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cut["compared_at"] == [protected.width - 24, protected.height]
    (x, y, w, h), (ex, ey, ew, eh) = cut["faces"][0]["box"], exact["faces"][0]["box"]
    assert len(cut["faces"]) == 1 and abs(x + w / 2 - ex - ew / 2) + abs(y + h / 2 - ey - eh / 2) < 6
    assert cut["psnr"] > 40  # the protection alone: the crop is cut, not resampled

    same = tmp_path / "same.png"
    Image.open(io.BytesIO(original.read_bytes())).save(same, "PNG")
    assert main(["verify", str(original), str(same), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out.strip().splitlines()[-1], parse_constant=_strict)
    assert clean["verdict"] == "unprotected" and clean["dsr_cmua"] == 0.0
    assert clean["psnr"] is None  # identical: strict JSON has no Infinity
    assert main(["verify", str(original), str(same)]) == 0  # the same, as text
    assert "margin 0.00 (weakest edit / threshold)" in capsys.readouterr().out


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """`protect` with the engine stubbed: the photos it was asked to protect."""
    from grasp_guard.cli import protect_cmd

    seen: list[bytes] = []

    def fake_protect(data: bytes, *_: object, **__: object) -> tuple[bytes, dict]:
        seen.append(data)
        return data + b" protected", {"protected": False, "reason": "stub"}

    monkeypatch.setattr(protect_cmd, "protect", fake_protect)
    monkeypatch.setattr(protect_cmd, "engine_from_args", lambda _: None)
    return seen


def _two_photos(tmp_path: Path, same_name: bool) -> list[str]:
    paths = [tmp_path / "a" / "photo.jpg", tmp_path / "b" / ("photo.jpg" if same_name else "other.jpg")]
    for i, path in enumerate(paths):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"photo %d" % i)
    return [str(p) for p in paths]


def test_an_output_that_cannot_be_written_is_refused_before_any_photo_is_protected(
        tmp_path: Path, engine_calls: list[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    same = _two_photos(tmp_path, same_name=True)
    assert main(["protect", *same, "-o", str(tmp_path / "out"), "--overwrite"]) == 2
    assert "would all be written to" in capsys.readouterr().err  # one would be lost
    a_file = tmp_path / "out.jpg"
    a_file.write_bytes(b"in the way")
    for out in (a_file, a_file / "protected"):  # the folder, or one of its parents
        assert main(["protect", *_two_photos(tmp_path, same_name=False), "-o", str(out)]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["protect", same[0], "-o", str(tmp_path / "out"),
                 "--report", str(tmp_path / "missing" / "report.json")]) == 2
    assert engine_calls == [] and not (tmp_path / "out").exists()


def test_a_trailing_slash_or_a_name_that_is_no_image_file_is_a_folder(
        tmp_path: Path, engine_calls: list[bytes]) -> None:
    photo = _two_photos(tmp_path, same_name=False)[0]
    for out in (str(tmp_path / "protected.2024-06"), str(tmp_path / "mine.jpg") + "/"):
        assert main(["protect", photo, "-o", out, "--report", str(tmp_path / "r.json")]) == 0
        assert (Path(out) / "photo.jpg").read_bytes() == b"photo 0 protected"
    assert main(["protect", photo, "-o", str(tmp_path / "me.JPG")]) == 0  # names an image file
    assert (tmp_path / "me.JPG").is_file()
