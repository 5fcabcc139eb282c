"""The weights cache: downloads from a loopback server, archives, checksums, registration."""

from __future__ import annotations

import hashlib
import http.server
import logging
import multiprocessing
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _zoo_helpers import Server, tiny_stargan, write_stargan_zip

from grasp_guard.errors import CheckpointError, ConfigError, WeightsUnavailableError
from grasp_guard.models.weights import CACHE_ENV, WeightsCache, default_cache_dir, read_checkpoint

MEMBER = "200000-G.ckpt"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def release(http_server: Server, tmp_path: Path) -> tuple[str, str]:
    """The official archive layout served on loopback: (URL, SHA-256 of the member)."""
    zip_path = write_stargan_zip(
        http_server.root / "celeba-128x128-5attrs.zip", tiny_stargan().state_dict()
    )
    with zipfile.ZipFile(zip_path) as zf:
        digest = hashlib.sha256(zf.read(MEMBER)).hexdigest()
    return f"{http_server.url}/celeba-128x128-5attrs.zip", digest


@pytest.fixture
def cache(tmp_path: Path) -> WeightsCache:
    return WeightsCache(tmp_path / "cache")


def _leftovers(cache: WeightsCache) -> list[str]:
    """Anything in the cache besides installed model folders and the registry."""
    if not cache.root.exists():
        return []
    installed = set(cache.records()) | {"registry.json", ".registry.lock"}
    return sorted(p.name for p in cache.root.iterdir() if p.name not in installed)


def test_fetch_pinned_extracts_the_member_and_registers_it(
    cache: WeightsCache, release: tuple[str, str]
) -> None:
    url, digest = release
    record = cache.fetch(
        "stargan", url, member=MEMBER, sha256=digest.upper(), verify=read_checkpoint
    )
    assert record.path == cache.root / "stargan" / MEMBER and record.pinned
    assert _sha(record.path) == digest == record.sha256 and record.source == url
    assert sorted(p.name for p in record.path.parent.iterdir()) == [MEMBER]  # only the member
    assert cache.path_for("stargan") == record.path
    assert WeightsCache(cache.root).record("stargan") == record  # persisted in registry.json
    assert _leftovers(cache) == []


def test_fetch_checksum_mismatch_installs_nothing(
    cache: WeightsCache, release: tuple[str, str]
) -> None:
    url, digest = release
    with pytest.raises(WeightsUnavailableError, match=f"SHA-256 mismatch.*got {digest}"):
        cache.fetch("stargan", url, member=MEMBER, sha256="0" * 64)
    assert cache.path_for("stargan") is None
    assert _leftovers(cache) == []


def test_fetch_unpinned_logs_the_digest(
    cache: WeightsCache, release: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, digest = release
    with caplog.at_level(logging.WARNING, logger="grasp_guard.models.weights"):
        record = cache.fetch("stargan", url, member=MEMBER)
    assert not record.pinned and record.sha256 == digest
    assert f"sha256 {digest} is not pinned" in caplog.text


def test_a_failed_refetch_keeps_the_installed_file(
    cache: WeightsCache, release: tuple[str, str]
) -> None:
    url, digest = release
    first = cache.fetch("stargan", url, member=MEMBER, sha256=digest)
    with pytest.raises(WeightsUnavailableError):
        cache.fetch("stargan", url, member=MEMBER, sha256="f" * 64)
    assert cache.record("stargan") == first and _sha(first.path) == digest
    assert _leftovers(cache) == []


def test_verify_rejection_installs_nothing(cache: WeightsCache, release: tuple[str, str]) -> None:
    url, _ = release

    def reject(path: Path) -> None:
        raise CheckpointError(f"{path.name}: wrong keys")

    with pytest.raises(CheckpointError, match="wrong keys"):
        cache.fetch("stargan", url, member=MEMBER, verify=reject)
    assert cache.path_for("stargan") is None and _leftovers(cache) == []


def test_server_down_is_a_clear_error(cache: WeightsCache) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        WeightsUnavailableError, match=rf"cannot reach http://127\.0\.0\.1:{port}/x\.zip.*offline"
    ):
        cache.fetch("stargan", f"http://127.0.0.1:{port}/x.zip", member=MEMBER)
    assert _leftovers(cache) == []


def test_http_error_is_reported(cache: WeightsCache, http_server: Server) -> None:
    with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
        cache.fetch("stargan", f"{http_server.url}/missing.zip", member=MEMBER)
    assert _leftovers(cache) == []


def test_a_silent_server_times_out(cache: WeightsCache) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection in the backlog, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.zip"
        with pytest.raises(WeightsUnavailableError, match="failed"):
            cache.fetch("stargan", url, member=MEMBER, timeout=0.3)
    assert _leftovers(cache) == []


class _Truncating(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def truncating_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Truncating)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x.zip"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_truncated_download_is_rejected(cache: WeightsCache, truncating_url: str) -> None:
    with pytest.raises(WeightsUnavailableError, match="truncated: 10 of 1000"):
        cache.fetch("stargan", truncating_url, member=MEMBER)
    assert _leftovers(cache) == []


def test_a_web_page_instead_of_the_archive(cache: WeightsCache, http_server: Server) -> None:
    (http_server.root / "page.zip").write_text("<html>preview</html>")
    with pytest.raises(WeightsUnavailableError, match="not a zip archive"):
        cache.fetch("stargan", f"{http_server.url}/page.zip", member=MEMBER)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (["200000-D.ckpt"], "found 0"),
        (["a/200000-G.ckpt", "b/200000-G.ckpt"], "found 2"),
        (["../../200000-G.ckpt"], "unsafe archive path"),
    ],
)
def test_archive_member_rules(
    cache: WeightsCache, http_server: Server, members: list[str], message: str
) -> None:
    with zipfile.ZipFile(http_server.root / "r.zip", "w") as zf:
        for name in members:
            zf.writestr(name, b"payload")
    with pytest.raises(WeightsUnavailableError, match=message):
        cache.fetch("stargan", f"{http_server.url}/r.zip", member=MEMBER)
    assert not (cache.root.parent / "200000-G.ckpt").exists() and _leftovers(cache) == []


def test_member_in_a_subfolder_is_found(cache: WeightsCache, http_server: Server) -> None:
    with zipfile.ZipFile(http_server.root / "r.zip", "w") as zf:
        zf.writestr("models/200000-G.ckpt", b"payload")
    record = cache.fetch("stargan", f"{http_server.url}/r.zip", member=MEMBER)
    assert record.path.read_bytes() == b"payload"


def test_a_plain_file_url_is_kept_under_its_name(cache: WeightsCache, http_server: Server) -> None:
    (http_server.root / "weights.49.pth").write_bytes(b"weights")
    record = cache.fetch("attgan", f"{http_server.url}/weights.49.pth")
    assert record.path.name == "weights.49.pth" and record.path.read_bytes() == b"weights"


def test_a_zip_without_a_member_name_is_refused(
    cache: WeightsCache, release: tuple[str, str]
) -> None:
    with pytest.raises(WeightsUnavailableError, match="is a zip archive"):
        cache.fetch("stargan", release[0])


def test_an_unsafe_member_name_is_refused(cache: WeightsCache, release: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="invalid archive member"):
        cache.fetch("stargan", release[0], member="..")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.zip"])
def test_only_http_urls(cache: WeightsCache, url: str) -> None:
    with pytest.raises(WeightsUnavailableError, match="only http"):
        cache.fetch("stargan", url, member=MEMBER)


@pytest.mark.parametrize("name", ["../evil", "", ".hidden", "a/b"])
def test_model_names_are_folder_safe(cache: WeightsCache, tmp_path: Path, name: str) -> None:
    src = tmp_path / "w.pth"
    src.write_bytes(b"w")
    with pytest.raises(ConfigError, match="invalid model name"):
        cache.add(name, src)


def test_add_copies_verifies_and_registers(cache: WeightsCache, tmp_path: Path) -> None:
    src = tmp_path / "mine" / "200000-G.ckpt"
    src.parent.mkdir()
    torch.save(tiny_stargan().state_dict(), src)
    extra = tmp_path / "mine" / "setting.txt"
    extra.write_text("{}")
    seen: list[Path] = []
    record = cache.add("stargan", src, extras=[extra], verify=seen.append)
    assert seen == [src] and record.source == str(src.resolve()) and not record.pinned
    digest = _sha(src)
    src.unlink()
    assert record.sha256 == digest == _sha(record.path)
    assert sorted(p.name for p in record.path.parent.iterdir()) == ["200000-G.ckpt", "setting.txt"]
    assert isinstance(read_checkpoint(cache.path_for("stargan")), dict)


def test_add_replaces_stale_extras(cache: WeightsCache, tmp_path: Path) -> None:
    first, second = tmp_path / "a.pth", tmp_path / "b.pth"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    settings = tmp_path / "setting.txt"
    settings.write_text("{}")
    cache.add("m", first, extras=[settings])
    record = cache.add("m", second)
    assert sorted(p.name for p in record.path.parent.iterdir()) == ["b.pth"]
    assert cache.path_for("m") == record.path


def test_add_with_a_pin_mismatch_registers_with_a_warning(
    cache: WeightsCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "w.pth"
    src.write_bytes(b"own training run")
    with caplog.at_level(logging.WARNING, logger="grasp_guard.models.weights"):
        record = cache.add("m", src, sha256="a" * 64)
    assert not record.pinned and "not the pinned" in caplog.text
    assert cache.add("m", src, sha256=_sha(src)).pinned


def test_add_rejections_leave_nothing(cache: WeightsCache, tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="is not a file"):
        cache.add("m", tmp_path / "absent.pth")
    src = tmp_path / "w.pth"
    src.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        cache.add("m", src, verify=read_checkpoint)
    assert cache.path_for("m") is None and _leftovers(cache) == []


def test_a_deleted_file_is_no_longer_cached(cache: WeightsCache, tmp_path: Path) -> None:
    src = tmp_path / "w.pth"
    src.write_bytes(b"w")
    cache.add("m", src).path.unlink()
    assert cache.path_for("m") is None and cache.records() == {}


def test_a_corrupt_registry_is_a_config_error(cache: WeightsCache) -> None:
    cache.root.mkdir(parents=True)
    (cache.root / "registry.json").write_text("[]")
    with pytest.raises(ConfigError, match="registry"):
        cache.records()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "grasp-guard" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "grasp-guard" / "models"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env" == WeightsCache().root


class _Payload:
    """Pickles to ``open(path, "w")``: unpickling it would create the file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.ckpt"
    torch.save({"G": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)
    assert not marker.exists()


def test_intact_hashes_the_file_now_against_the_pin_of_today(cache: WeightsCache,
                                                            tmp_path: Path) -> None:
    src = tmp_path / "w.pth"
    src.write_bytes(b"release 1")
    record = cache.add("m", src, sha256=_sha(src))
    assert cache.intact("m", _sha(src)) == record == cache.intact("m", None)
    assert cache.intact("m", "ab" * 32) is None  # the zoo's pin moved on to a new release
    record.path.write_bytes(b"release 1, cut sh")  # changed on disk since it was installed
    assert cache.intact("m", _sha(src)) is None and cache.intact("m", None) is None
    assert cache.intact("other", None) is None


def test_installs_side_by_side_each_keep_their_registry_entry(cache: WeightsCache,
                                                              tmp_path: Path) -> None:
    sources = []
    for i in range(16):
        sources.append(tmp_path / f"w{i}.pth")
        sources[-1].write_bytes(b"%d" % i)
    fork = multiprocessing.get_context("fork")  # `models fetch` run twice at once
    workers = [fork.Process(target=cache.add, args=(f"m{i}", src)) for i, src in enumerate(sources)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sorted(cache.records()) == sorted(f"m{i}" for i in range(16))


def test_a_redirect_off_http_is_refused(cache: WeightsCache) -> None:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:9/weights.pth")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(WeightsUnavailableError, match="only http"):
            cache.fetch("m", f"http://127.0.0.1:{server.server_port}/weights.pth", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
