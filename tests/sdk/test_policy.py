"""The policy model: the shipped config loads, matching is first-wins, errors say where."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from grasp_sdk import (
    POLICY_ENV,
    Policy,
    PolicyError,
    default_policy_path,
    load_policy,
    parse_policy,
)
from grasp_sdk.policy import shipped_policy_path

CONFIG = Path(__file__).resolve().parents[2] / "sdk" / "grasp_sdk" / "policy.yaml"


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(CONFIG)


def test_the_shipped_policy_is_package_data_and_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    assert shipped_policy_path() == CONFIG  # the source tree's file, read as package data
    assert default_policy_path() == CONFIG
    assert load_policy() == load_policy(CONFIG)


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_policy_variable_means_the_shipped_policy(value: str) -> None:
    assert default_policy_path({POLICY_ENV: value}) == CONFIG


def test_the_policy_variable_replaces_the_shipped_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("sites:\n  - {name: mine, hosts: [up.example.com]}\n")
    monkeypatch.setenv(POLICY_ENV, str(mine))
    assert default_policy_path() == mine
    assert [s.name for s in load_policy().sites] == ["mine"]
    assert [s.name for s in load_policy(CONFIG).sites] != ["mine"]  # a given path wins


@pytest.mark.parametrize(("method", "url", "site"), [
    ("POST", "https://i.instagram.com/rupload_igphoto/fb_uploader_17", "instagram"),
    ("POST", "https://www.threads.net/rupload_igphoto/fb_uploader_17", "instagram"),
    ("GET", "https://i.instagram.com/rupload_igphoto/fb_uploader_17", None),
    ("POST", "https://upload.facebook.com/ajax/react_composer/attachments/photo/upload",
     "facebook"),
    ("POST", "https://graph.facebook.com/v19.0/upload:MTphdHRhY2g?sig=1", "facebook-graph"),
    ("POST", "https://upload.x.com/i/media/upload.json?command=APPEND&media_id=1", "x"),
    ("POST", "https://upload.twitter.com/1.1/media/upload.json", "x"),
    ("POST", "https://api.x.com/2/media/upload", "x-api"),
    ("POST", "https://api.x.com/2/media/upload/initialize", "x-api"),
    ("POST", "https://api.twitter.com/2/media/upload/1146654567674912769/append", "x-api"),
    ("POST", "https://api.x.com/2/media/upload/1146654567674912769/finalize", "x-api"),
    ("POST", "https://api.x.com/2/tweets", None),
    ("POST", "https://reddit-uploaded-media.s3-accelerate.amazonaws.com/", "reddit"),
    ("PUT", "https://www.linkedin.com/dms-uploads/C5F10/uploaded-image/0?ca=vector", "linkedin"),
    ("POST", "https://www.linkedin.com/feed/", None),
    ("POST", "https://fosstodon.org/api/v2/media", "mastodon"),
    ("PATCH", "https://mastodon.social/api/v1/accounts/update_credentials", "mastodon"),
    ("POST", "https://morel.us-east.host.bsky.network/xrpc/com.atproto.repo.uploadBlob",
     "bluesky"),
    ("PUT", "https://discord-attachments-uploads-prd.storage.googleapis.com/a/b?X-Goog-Signature=1",
     "discord-attachments"),
    ("PATCH", "https://discord.com/api/v9/users/@me", "discord"),
    ("POST", "https://files.slack.com/upload/v1/CwABAAAAXw", "slack"),
    ("POST", "https://example.com/upload", None),  # the generic rule ships disabled
])
def test_shipped_policy_matches(shipped: Policy, method: str, url: str,
                                site: str | None) -> None:
    rule = shipped.match(method, url)
    assert (rule.name if rule else None) == site


def test_shipped_policy_options(shipped: Policy) -> None:
    x = shipped.match("POST", "https://upload.x.com/i/media/upload.json")
    assert x.options().size_mode == "exact" and x.options().site == "x"
    instagram = shipped.get("instagram")
    assert instagram.length_headers == ("X-Entity-Length",)
    assert instagram.options().site_jpeg_quality == 70  # the low end of [70, 85]
    assert instagram.options(exact_size=True).size_mode == "exact"
    assert not shipped.get("generic-multipart").enabled


def test_allow_hosts(shipped: Policy) -> None:
    patterns = [re.compile(p, re.IGNORECASE) for p in shipped.allow_hosts()]

    def allowed(host_port: str) -> bool:
        return any(p.search(host_port) for p in patterns)

    assert allowed("i.instagram.com:443")
    assert allowed("morel.us-east.host.bsky.network:443")
    assert allowed("mastodon.social:443")
    assert not allowed("bsky.network:443")
    assert not allowed("example.com:443")  # any-host rules do not intercept everything
    assert not allowed("i.instagram.com.evil.com:443")


def test_first_match_wins_and_globs() -> None:
    policy = parse_policy("""
sites:
  - {name: one, hosts: ["*.cdn.test"], paths: ["/up/*"]}
  - {name: two, hosts: ["*"], paths: ["/up/**", "^/v[0-9]+/media$"]}
  - {name: disabled, hosts: ["*"], enabled: false}
""")
    assert policy.match("POST", "https://a.b.cdn.test/up/x").name == "one"
    assert policy.match("POST", "https://a.b.cdn.test/up/x/y").name == "two"
    assert policy.match("POST", "https://cdn.test/up/x").name == "two"
    assert policy.match("PUT", "https://h/v2/media?x=1").name == "two"
    assert policy.match("POST", "https://h/v2/media/1") is None
    assert policy.match("DELETE", "https://h/up/x") is None


def test_defaults_apply_and_sites_override() -> None:
    policy = parse_policy("""
defaults: {size_mode: max, on_failure: block, methods: [PUT]}
sites:
  - {name: a, hosts: [a.test]}
  - {name: b, hosts: [b.test], size_mode: exact,
     site_pipeline: {jpeg_quality: 80, max_side: 512, blur_sigma: 0.5}}
""")
    a, b = policy.sites
    assert (a.size_mode, a.on_failure, a.methods) == ("max", "block", frozenset({"PUT"}))
    assert b.size_mode == "exact"
    options = b.options()
    assert (options.site_jpeg_quality, options.site_max_side, options.site_blur_sigma) == (
        80, 512, 0.5)


def test_chunked_upload_limits_default_and_override() -> None:
    policy = parse_policy("""
sites:
  - {name: a, hosts: [a.test], chunked_upload: {protocol: x}}
  - {name: b, hosts: [b.test], chunked_upload: {protocol: x, max_total_bytes: 9000,
                                                max_segments: 3, hold_s: 1.5}}
  - {name: c, hosts: [c.test]}
""")
    a, b, c = (site.chunked_upload for site in policy.sites)
    assert a is not None and (a.protocol, a.max_total_bytes, a.max_segments, a.hold_s) == (
        "x", 20 * 2**20, 32, 120.0)
    assert b is not None and (b.max_total_bytes, b.max_segments, b.hold_s) == (9000, 3, 1.5)
    assert c is None


@pytest.mark.parametrize(("text", "site", "field", "message"), [
    ("sites: [{name: s, hosts: [h], size_mode: exactly}]", "s", "size_mode", "one of"),
    ("sites: [{name: s, hosts: []}]", "s", "hosts", "at least one host"),
    ("sites: [{name: s}]", "s", "hosts", "required"),
    ("sites: [{hosts: [h]}]", "#1", "name", "non-empty"),
    ("sites: [{name: s, hosts: [h], colour: red}]", "s", "colour", "unknown field"),
    ("sites: [{name: s, hosts: [h], paths: [up]}]", "s", "paths", "must start with"),
    ("sites: [{name: s, hosts: [h], paths: ['^(']}]", "s", "paths", "bad path regex"),
    ("sites: [{name: s, hosts: ['a b']}]", "s", "hosts", "not a host"),
    ("sites: [{name: s, hosts: [h], formats: [xml]}]", "s", "formats", "one of"),
    ("sites: [{name: s, hosts: [h], max_bytes: -1}]", "s", "max_bytes", "integer"),
    ("sites: [{name: s, hosts: [h], signed: 'yes'}]", "s", "signed", "true or false"),
    ("sites: [{name: s, hosts: [h], site_pipeline: {jpeg_quality: [90, 70]}}]", "s",
     "site_pipeline", "range"),
    ("sites: [{name: s, hosts: [h], site_pipeline: {max_side: 8}}]", "s", "site_pipeline",
     "16..65535"),
    ("sites: [{name: s, hosts: [h], site_pipeline: {gamma: 2}}]", "s", "site_pipeline",
     "unknown key"),
    ("sites: [{name: s, hosts: [h], chunked_upload: {max_segments: 3}}]", "s",
     "chunked_upload", "protocol is required"),
    ("sites: [{name: s, hosts: [h], chunked_upload: {protocol: tus}}]", "s",
     "chunked_upload", "one of x"),
    ("sites: [{name: s, hosts: [h], chunked_upload: {protocol: x, hold_s: 0}}]", "s",
     "chunked_upload", "hold_s"),
    ("sites: [{name: s, hosts: [h], chunked_upload: {protocol: x, max_segments: 0}}]", "s",
     "chunked_upload", "1..1000"),
    ("sites: [{name: s, hosts: [h], chunked_upload: {protocol: x, window: 2}}]", "s",
     "chunked_upload", "unknown key"),
    ("defaults: {preset: turbo}\nsites: [{name: s, hosts: [h]}]", "defaults", "preset",
     "one of"),
    ("defaults: {hosts: [h]}\nsites: [{name: s, hosts: [h]}]", "defaults", "hosts",
     "not a field allowed"),
    ("sites: [{name: s, hosts: [h]}, {name: s, hosts: [g]}]", "s", "name", "duplicate"),
])
def test_validation_errors_name_file_site_and_field(tmp_path: Path, text: str, site: str,
                                                    field: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path)
    error = info.value
    assert (error.source, error.site, error.field) == (str(path), site, field)
    assert str(path) in str(error) and repr(site) in str(error) and repr(field) in str(error)


@pytest.mark.parametrize(("text", "message"), [
    ("sites: [", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("version: 2\nsites: [{name: s, hosts: [h]}]\n", "unsupported version"),
    ("sites: []\n", "non-empty list"),
    ("site: []\n", "unknown top-level"),
])
def test_document_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, source="inline.yaml")


def test_load_policy_text_and_missing_file(tmp_path: Path) -> None:
    assert load_policy("sites:\n  - {name: s, hosts: [h]}\n").sites[0].name == "s"
    with pytest.raises(PolicyError, match="cannot read policy") as info:
        load_policy(str(tmp_path / "missing.yaml"))
    assert info.value.source == str(tmp_path / "missing.yaml")
