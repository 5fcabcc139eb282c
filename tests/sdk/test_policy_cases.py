"""The shared policy cases (tests/policy_cases.json) through the Python upload hook.

The JavaScript SDK runs the same table (sdk/js/test/policy_cases.test.js, started by
tests/sdk/test_js_sdk.py): both must give the same site, reason, options and body.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from grasp_sdk import ProtectOptions, ProtectResult, load_policy, rewrite_upload
from grasp_sdk.sniff import image_type

CASES_FILE = Path(__file__).resolve().parents[1] / "policy_cases.json"
TABLE = json.loads(CASES_FILE.read_text(encoding="utf-8"))
IMAGES = {name: base64.b64decode(text) for name, text in TABLE["images"].items()}


def flip(data: bytes) -> bytes:
    """The stand-in service's edit: four bytes near the end inverted (same length, same type)."""
    return data[:-6] + bytes(b ^ 0xFF for b in data[-6:-2]) + data[-2:]


def build_body(body: dict[str, Any], images: dict[str, bytes]) -> bytes:
    """A case's body, with ``images`` standing for the table's images (see its ``about``)."""
    jpeg = images["jpeg"]
    b64 = base64.b64encode(jpeg).decode()
    values = {"{jpeg_b64}": b64, "{jpeg_b64_pct}": quote(b64, safe=""),
              "{jpeg_data_uri}": "data:image/jpeg;base64," + b64}

    def text(template: str) -> bytes:
        for key, value in values.items():
            template = template.replace(key, value)
        return template.encode()

    if "raw" in body:
        return images[body["raw"]]
    if "text" in body:
        return text(body["text"])
    if "json" in body:
        return text(json.dumps(body["json"], separators=(",", ":")))
    form = body["multipart"]
    out = b""
    for part in form["parts"]:
        disposition = f'form-data; name="{part["name"]}"'
        if "filename" in part:
            disposition += f'; filename="{part["filename"]}"'
        out += f"--{form['boundary']}\r\nContent-Disposition: {disposition}\r\n".encode()
        if "content_type" in part:
            out += f"Content-Type: {part['content_type']}\r\n".encode()
        content = images[part["image"]] if "image" in part else text(part["text"])
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{form['boundary']}--\r\n".encode()


@pytest.fixture(scope="module")
def policy():
    return load_policy()


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["id"] for c in TABLE["cases"]])
async def test_policy_case(case: dict[str, Any], policy) -> None:
    calls: list[ProtectOptions] = []

    async def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        calls.append(options)
        return ProtectResult(flip(data), image_type(data) or "", {"faces": 1, "protected": True})

    body = build_body(case["body"], IMAGES)
    out = await rewrite_upload(case["method"], case["url"], case["headers"], body, policy, protect)
    expect = case["expect"]
    assert (out.site, out.changed, out.reason) == (expect["site"], expect["changed"], expect["reason"])
    if expect["site"] is not None:
        assert policy.get(expect["site"]).on_failure == expect["on_failure"]
    assert [c.to_params() for c in calls] == ([expect["params"]] if "params" in expect else [])
    flipped = {name: flip(data) for name, data in IMAGES.items()}
    assert out.body == (build_body(case["body"], flipped) if expect["changed"] else body)


def test_the_cases_cover_every_enabled_site(policy) -> None:
    covered = {c["expect"]["site"] for c in TABLE["cases"]}
    assert {s.name for s in policy.sites if s.enabled} <= covered
    assert None in covered and len(TABLE["cases"]) >= 30
