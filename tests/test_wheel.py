"""The built wheel works outside the checkout: its CLI, its package data, its light SDK.

The wheel is built from a copy of the sources (no build isolation: no network), installed
without dependencies into a temporary folder, and run with ``python -S`` from a folder
outside the checkout: the path holds the install and the environment's site-packages (for
the dependencies) and nothing else; ``-S`` also keeps the editable install's finder out.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "grasp_guard", "sdk", "proxy_addon")
BLOCKED = ("torch", "PIL", "cv2", "numpy", "grasp_guard")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the wheel was installed into."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"),
                    str(src)], check=True, capture_output=True, timeout=120)
    (wheel,) = (base / "dist").glob("grasp_guard-*.whl")
    prefix = base / "prefix"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(prefix), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    return prefix


def _run(installed: Path, cwd: Path, *args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    paths = dict.fromkeys([str(installed), sysconfig.get_paths()["purelib"],
                           sysconfig.get_paths()["platlib"]])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRASP_GUARD_")}
    environ.update(PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-S", *args], check=False, cwd=cwd, env=environ,
                          text=True, capture_output=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_package_data_is_in_the_install(installed: Path) -> None:
    for path in ("grasp_guard/config/models.yaml", "grasp_guard/config/service.yaml",
                 "grasp_sdk/policy.yaml", "grasp_sdk/py.typed",
                 "grasp_guard/models/weights/reference.pt",
                 "grasp_guard/benchmarks/faces/manifest.json",
                 "grasp_guard/benchmarks/faces/PROVENANCE.md"):
        assert (installed / path).is_file(), path
    shipped = {p.name for p in (ROOT / "grasp_guard/benchmarks/faces").glob("*.jpg")}
    assert {p.name for p in (installed / "grasp_guard/benchmarks/faces").glob("*.jpg")} == shipped


def test_cli_runs_from_the_install(installed: Path, tmp_path: Path) -> None:
    where = _ok(_run(installed, tmp_path, "-c", "import grasp_guard, grasp_sdk, proxy_addon; "
                     "print(grasp_guard.__file__, grasp_sdk.__file__, proxy_addon.__file__)"))
    assert all(Path(f).is_relative_to(installed) for f in where.split()), where

    cache = tmp_path / "cache"
    cache.mkdir()
    listing = _ok(_run(installed, tmp_path, "-m", "grasp_guard", "models", "list",
                       env={"GRASP_GUARD_CACHE": str(cache)}))
    assert "reference" in listing and "cyclegan-vintage" in listing

    from skimage import data

    Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS).save(
        tmp_path / "face.jpg", quality=90)
    _ok(_run(installed, tmp_path, "-m", "grasp_guard", "protect", "face.jpg", "-o", "out.jpg",
             "--preset", "fast", "--models", "reference", "--report", "report.json",
             env={"GRASP_GUARD_CACHE": str(cache)}, timeout=180))
    (report,) = json.loads((tmp_path / "report.json").read_text())
    assert report["protected"] and len(report["faces"]) == 1, report
    with Image.open(tmp_path / "out.jpg") as protected:
        assert protected.format == "JPEG"

    usage = _ok(_run(installed, tmp_path, "-m", "grasp_guard", "proxy", "--help"))
    assert "--policy" in usage


SDK_SCRIPT = r"""
import sys

BLOCKED = set(sys.argv[3].split(","))


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the SDK must not need it")
        return None


sys.meta_path.insert(0, Block())

import asyncio
import json
from pathlib import Path

from aiohttp import web

import grasp_sdk
from grasp_sdk import GraspClient, load_policy, rewrite_upload


async def fake_service(request):
    data = await request.read()
    out = data[:-6] + bytes(b ^ 0xFF for b in data[-6:-2]) + data[-2:]
    return web.Response(body=out, content_type="image/jpeg",
                        headers={"X-Grasp-Report": json.dumps({"faces": 1})})


async def main():
    app = web.Application()
    app.router.add_post("/v1/protect", fake_service)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    body = Path(sys.argv[1]).read_bytes()
    headers = {"Content-Type": sys.argv[2], "Content-Length": str(len(body))}
    policy = load_policy()
    try:
        async with GraspClient(f"http://127.0.0.1:{port}") as client:
            rw = await rewrite_upload("POST", "https://upload.x.com/i/media/upload.json",
                                      headers, body, policy, client.protect)
    finally:
        await runner.cleanup()
    print(json.dumps({
        "changed": rw.changed, "site": rw.site, "reason": rw.reason,
        "same_length": len(rw.body) == len(body), "differs": rw.body != body,
        "policy": policy.source, "sdk": grasp_sdk.__file__,
        "loaded": sorted({m.split(".")[0] for m in sys.modules} & BLOCKED),
    }))


asyncio.run(main())
"""


def test_sdk_alone_from_the_install(installed: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 90)).save(buf, "JPEG")
    boundary = "grasp-wheel-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; "
            f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() \
        + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "sdk_check.py").write_text(SDK_SCRIPT)
    out = _ok(_run(installed, tmp_path, "sdk_check.py", "body",
                   f"multipart/form-data; boundary={boundary}", ",".join(BLOCKED)))
    result = json.loads(out.strip().splitlines()[-1])
    assert result["changed"] and result["site"] == "x", result
    assert result["same_length"] and result["differs"], result
    assert Path(result["policy"]).is_relative_to(installed), result
    assert Path(result["sdk"]).is_relative_to(installed), result
    assert result["loaded"] == [], result
