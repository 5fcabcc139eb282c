"""RFC 9530 digest fields: parsing, the reasons a field cannot follow a new body, recomputing."""

from __future__ import annotations

import base64
import hashlib

import pytest
from grasp_sdk import digest_fields as df

BODY = b"hello world"
NEW = b"a protected body"


def sf(alg: str, data: bytes) -> str:
    """``alg=:BASE64:`` of ``data``'s digest."""
    digest = hashlib.new(alg.replace("-", ""), data).digest()
    return f"{alg}=:{base64.b64encode(digest).decode()}:"


def test_rfc_9530_example_parses() -> None:
    # RFC 9530 appendix B.1: the sha-256 of {"hello": "world"}\n.
    value = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    (member,) = df.parse(value)
    assert member.algorithm == "sha-256"
    assert member.digest == hashlib.sha256(b'{"hello": "world"}\n').digest()
    assert df.problem(value, b'{"hello": "world"}\n') is None


@pytest.mark.parametrize("value", [
    f"{sf('sha-256', BODY)}",
    f"  {sf('sha-256', BODY)}, {sf('sha-512', BODY)}  ",
    f"{sf('sha-512', BODY)},{sf('sha-256', BODY)}",
    f"{sf('sha-256', BODY)};note=\"a, b\";n=1, {sf('sha-512', BODY)};x",
    f"{sf('sha-256', BODY)}\t,\t{sf('sha-256', BODY)}",
])
def test_good_fields_have_no_problem_and_are_recomputed(value: str) -> None:
    assert df.problem(value, BODY) is None
    new = df.recompute(value, NEW)
    assert df.problem(new, NEW) is None
    assert [m.algorithm for m in df.parse(new)] == [m.algorithm for m in df.parse(value)]


def test_recompute_changes_only_the_base64() -> None:
    value = f"{sf('sha-256', BODY)};p=?1 ,  {sf('sha-512', BODY)}"
    assert df.recompute(value, NEW) == f"{sf('sha-256', NEW)};p=?1 ,  {sf('sha-512', NEW)}"


@pytest.mark.parametrize(("value", "reason"), [
    ("", "malformed (empty value)"),
    ("sha-256", "expected '='"),
    ("sha-256=abc", "byte sequence"),
    ('sha-256="abc"', "byte sequence"),
    ("sha-256=(:AAAA:)", "byte sequence"),
    ("SHA-256=:AAAA:", "expected an algorithm name"),
    ("sha-256=:x:", "bad base64"),
    ("sha-256=:AAAA:,", "trailing comma"),
    ("sha-256=:AAAA: sha-512=:AAAA:", "expected ','"),
    ("sha-256=:AAAA:;p=%\"display\"", "expected ','"),
    ("md5=:XrY7u+Ae7tCTyyK7j1rNww==:", "unsupported algorithm md5"),
    (f"{sf('sha-256', BODY)}, crc32c=:yZRlqg==:", "unsupported algorithm crc32c"),
    ("unixsum=:AAAA:, sha=:AAAA:", "unsupported algorithm sha, unixsum"),
    ("sha-3-256=:AAAA:", "unsupported algorithm sha-3-256"),
    (sf("sha-256", b"another file"), "sha-256 digest does not match the body"),
    (f"{sf('sha-256', BODY)}, {sf('sha-512', b'x')}", "sha-512 digest does not match"),
])
def test_problems(value: str, reason: str) -> None:
    found = df.problem(value, BODY)
    assert found is not None and reason in found, found


def test_without_a_body_only_the_syntax_and_algorithms_are_checked() -> None:
    assert df.problem(sf("sha-256", b"another file")) is None
    assert df.problem("md5=:AAAA:") is not None


@pytest.mark.parametrize("value", ["md5=:AAAA:", "sha-256"])
def test_recompute_refuses_what_it_cannot_recompute(value: str) -> None:
    with pytest.raises(ValueError):
        df.recompute(value, NEW)
