"""`grasp-guard policy compile`: the validated policy as JSON, or a one-line error."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from grasp_sdk import PolicyError, SiteRule, load_policy, parse_policy
from grasp_sdk.policy_json import FORMAT, compile_policy

from grasp_guard.cli import main


def test_compile_writes_every_site_with_every_field(tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    assert main(["policy", "compile", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    policy = load_policy()
    assert doc["format"] == FORMAT
    assert [s["name"] for s in doc["sites"]] == [s.name for s in policy.sites]
    fields = {f.name for f in dataclasses.fields(SiteRule)}
    assert all(set(site) == fields for site in doc["sites"])
    instagram = doc["sites"][0]
    assert instagram["hosts"][0] == "i.instagram.com"
    assert instagram["paths"] == ["/rupload_igphoto/*"]
    assert instagram["site_pipeline"]["jpeg_quality"] == [70, 85]
    assert instagram["on_failure"] == "pass"  # from the defaults


def test_compile_to_stdout_reads_the_given_policy(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("defaults: {on_failure: block}\n"
                    "sites:\n  - {name: mine, hosts: ['*.Example.com'], methods: [put, post]}\n")
    assert main(["policy", "compile", "--policy", str(mine)]) == 0
    (site,) = json.loads(capsys.readouterr().out)["sites"]
    assert site["hosts"] == ["*.example.com"]
    assert site["methods"] == ["POST", "PUT"]
    assert site["on_failure"] == "block"
    assert site["paths"] == [] and site["site_pipeline"] is None


def test_an_invalid_policy_is_one_line_naming_the_site(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - {name: bad, hosts: [a.example], on_failure: maybe}\n")
    assert main(["policy", "compile", "--policy", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "site 'bad'" in err and "on_failure" in err


@pytest.mark.parametrize("regex", [
    "^/(?P<v>v[0-9]+)/upload", "^/(?i:upload)", "^/upload\\Z", "^/a++", "^/(?>a)b",
])
def test_python_only_path_regexes_are_refused(regex: str) -> None:
    policy = parse_policy(f"sites:\n  - {{name: s, hosts: [a.example], paths: ['{regex}']}}\n")
    with pytest.raises(PolicyError, match="JavaScript"):
        compile_policy(policy)


@pytest.mark.parametrize("regex", ["^/v[0-9.]+/upload:", "^/(?:a|b)/v[0-9]+$", "^/a\\++"])
def test_regexes_both_languages_read_alike_compile(regex: str) -> None:
    policy = parse_policy(f"sites:\n  - {{name: s, hosts: [a.example], paths: ['{regex}']}}\n")
    assert compile_policy(policy)["sites"][0]["paths"] == [regex]
