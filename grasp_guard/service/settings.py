"""The service's settings: one frozen, validated dataclass, read from YAML, flags and env.

Precedence, lowest first: the dataclass defaults (the embedded defaults), the YAML file
(the shipped ``grasp_guard/config/service.yaml`` documents every key, and
``$GRASP_GUARD_SERVICE_CONFIG`` or ``--config`` replaces it), the environment
(``GRASP_GUARD_TOKEN``), the command line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grasp_guard.config import SERVICE_CONFIG_ENV, config_path, shipped_path
from grasp_guard.errors import ConfigError

DEFAULT_CONFIG_PATH = shipped_path("service.yaml")
TOKEN_ENV = "GRASP_GUARD_TOKEN"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
BACKENDS = ("local", "ray")
DETECTOR_CHOICES = ("auto", "centerface", "haar", "yunet")
# scheme://host[:port] in lower case, nothing after: an origin as browsers send it.
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://([a-z0-9._~-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_origin(value: Any) -> bool:
    """Whether ``value`` is an origin as a browser sends it in ``Origin``
    (``chrome-extension://<id>``, ``https://host:port``): no path, no wildcard."""
    return isinstance(value, str) and ORIGIN.fullmatch(value) is not None


def parse_autoscale(text: str) -> tuple[int, int]:
    """``MIN:MAX`` replicas (``1:4``) as a pair of ints.

    Raises:
        ValueError: not two whole numbers with 1 <= MIN <= MAX.
    """
    low, sep, high = text.partition(":")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        bounds = (0, 0)
    if not sep or not 1 <= bounds[0] <= bounds[1]:
        raise ValueError(f"expected MIN:MAX replicas with 1 <= MIN <= MAX, got {text!r}")
    return bounds


def _check(ok: bool, name: str, expected: str, actual: Any) -> None:
    if not ok:
        raise ConfigError(f"service setting {name} must be {expected}, got {actual!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class Settings:
    """How the protection service runs. See ``grasp_guard/config/service.yaml`` for each key.

    Attributes:
        host: the address to bind; anything but loopback requires ``token``.
        port: the TCP port.
        token: the bearer token every request but ``/healthz`` must carry; None: none asked.
        device: ``auto`` (the GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
        models: the surrogate editors (zoo names) the defense optimises against.
        detector: the face detector: ``auto`` (CenterFace once fetched, else the Haar
            cascade), ``centerface``, ``haar`` or ``yunet`` (with ``detector_model``).
        detector_model: the detector's model file (yunet; centerface: instead of the cached
            one); None: none.
        max_batch: the most face crops optimised together in one batch.
        gather_ms: how long the oldest waiting crop waits for others to fill its batch.
        queue_size: requests admitted at once (decoding, queued or optimising); beyond: 429.
        upload_slots: uploads whose bodies are arriving at once, before admission (a slow
            client holds none of the ``queue_size`` slots); beyond: 429.
        upload_timeout_s: seconds an upload's body may take to arrive, one more for every
            ``upload_min_rate`` bytes received (Apache's mod_reqtimeout rule); beyond: 408.
        upload_min_rate: bytes a second an upload keeps its time with (see above).
        upload_max_s: the most seconds an upload may take to arrive, whatever its rate.
        max_bytes: the largest request body, in bytes; beyond: 413.
        max_pixels: the largest decoded image, in pixels; beyond: 413.
        deadline_s: seconds a request may take once admitted (its body arrived); a request
            expected to take longer is refused (429); one that still runs out of it is
            answered 503 (still queued) or 504 (optimising), and its work is dropped.
        admission_prior_s: seconds a face crop is assumed to take, with no gain from
            batching, until a batch of its kind (crop size, preset, site) has been timed.
        admission_retime_s: seconds after which a kind's timings are due a fresh one: with
            the device idle and nothing waiting, one request of it is then taken whatever
            its estimate says (so a kind timed during a load spike is not refused for good).
        retry_after_s: the ``Retry-After`` sent with 503 answers and with 429 when the
            queue is full, in seconds (a request refused for its deadline is told when it
            would fit).
        cpu_threads: threads that decode and detect off the event loop, and as many that
            paste back and encode admitted requests.
        shutdown_timeout_s: how long a shutdown waits for in-flight requests to finish.
        cors_origins: the browser origins allowed to call the service (the browser
            extension's, ``chrome-extension://<id>``); a request carrying any other
            ``Origin`` is refused (403). Requests without ``Origin`` are not affected.
        backend: where crops are optimised: ``local`` (this process, one device) or
            ``ray`` (replicas of a Ray Serve deployment; needs the ``ray`` extra).
        ray_address: the Ray cluster of the ``ray`` backend: ``local`` (one started for
            this service and stopped with it), ``auto`` (the cluster running on this
            machine) or ``ray://host:port`` (a remote cluster's client server).
        replicas: engine replicas of the ``ray`` backend, when not autoscaled.
        autoscale: ``(min, max)`` replicas for Ray Serve's autoscaler; None: ``replicas``.
        replica_cpus: CPUs Ray reserves for each replica.
        replica_gpus: GPUs Ray reserves for each replica; None: one when ``device`` asks
            for CUDA, or is ``auto`` and the cluster has a GPU; else none.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    device: str = "auto"
    models: tuple[str, ...] = ("default",)
    detector: str = "auto"
    detector_model: str | None = None
    max_batch: int = 8
    gather_ms: float = 20.0
    queue_size: int = 32
    upload_slots: int = 32
    upload_timeout_s: float = 30.0
    upload_min_rate: int = 8192
    upload_max_s: float = 300.0
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    deadline_s: float = 120.0
    admission_prior_s: float = 60.0
    admission_retime_s: float = 300.0
    retry_after_s: int = 2
    cpu_threads: int = 2
    shutdown_timeout_s: float = 60.0
    cors_origins: tuple[str, ...] = ()
    backend: str = "local"
    ray_address: str = "local"
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    replica_cpus: float = 1.0
    replica_gpus: float | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.host, str) and bool(self.host), "host", "a host name or address",
               self.host)
        _check(_is_int(self.port) and 0 <= self.port <= 65535, "port", "an int in 0..65535",
               self.port)
        if self.token is not None:
            _check(isinstance(self.token, str) and bool(self.token) and self.token.isascii()
                   and self.token.isprintable() and " " not in self.token, "token",
                   "non-empty printable ASCII without spaces", "<hidden>")
        elif not is_loopback(self.host):
            raise ConfigError(
                f"binding {self.host!r} (not loopback) requires a bearer token: set "
                f"{TOKEN_ENV}, --token or `token:` in the settings file")
        _check(isinstance(self.device, str) and bool(self.device), "device",
               "auto, cpu, cuda or cuda:N", self.device)
        _check(isinstance(self.models, tuple) and bool(self.models)
               and all(isinstance(m, str) and m for m in self.models), "models",
               "a non-empty list of model names", self.models)
        _check(self.detector in DETECTOR_CHOICES, "detector", ", ".join(DETECTOR_CHOICES),
               self.detector)
        _check(self.detector_model is None or (isinstance(self.detector_model, str)
                                               and bool(self.detector_model)),
               "detector_model", "null or a model file path", self.detector_model)
        if self.detector == "yunet" and self.detector_model is None:
            raise ConfigError("service setting detector yunet needs detector_model, its file")
        if self.detector in ("auto", "haar") and self.detector_model is not None:
            raise ConfigError(f"service setting detector {self.detector} takes no "
                              "detector_model (name centerface or yunet)")
        _check(_is_int(self.max_batch) and 1 <= self.max_batch <= 256, "max_batch",
               "an int in 1..256", self.max_batch)
        _check(_is_number(self.gather_ms) and 0 <= self.gather_ms <= 1000, "gather_ms",
               "a number in 0..1000", self.gather_ms)
        _check(_is_int(self.queue_size) and self.queue_size >= 1, "queue_size", "an int ≥ 1",
               self.queue_size)
        _check(_is_int(self.upload_slots) and self.upload_slots >= 1, "upload_slots",
               "an int ≥ 1", self.upload_slots)
        _check(_is_number(self.upload_timeout_s) and self.upload_timeout_s > 0,
               "upload_timeout_s", "> 0", self.upload_timeout_s)
        _check(_is_int(self.upload_min_rate) and self.upload_min_rate >= 1, "upload_min_rate",
               "an int ≥ 1 (bytes a second)", self.upload_min_rate)
        _check(_is_number(self.upload_max_s) and self.upload_max_s >= self.upload_timeout_s,
               "upload_max_s", "≥ upload_timeout_s", self.upload_max_s)
        _check(_is_int(self.max_bytes) and self.max_bytes >= 1024, "max_bytes", "an int ≥ 1024",
               self.max_bytes)
        _check(_is_int(self.max_pixels) and self.max_pixels >= 64 * 64, "max_pixels",
               "an int ≥ 4096", self.max_pixels)
        _check(_is_number(self.deadline_s) and self.deadline_s > 0, "deadline_s", "> 0",
               self.deadline_s)
        _check(_is_number(self.admission_prior_s) and self.admission_prior_s > 0,
               "admission_prior_s", "> 0", self.admission_prior_s)
        _check(_is_number(self.admission_retime_s) and self.admission_retime_s > 0,
               "admission_retime_s", "> 0", self.admission_retime_s)
        _check(_is_int(self.retry_after_s) and self.retry_after_s >= 0, "retry_after_s",
               "an int ≥ 0", self.retry_after_s)
        _check(_is_int(self.cpu_threads) and 1 <= self.cpu_threads <= 64, "cpu_threads",
               "an int in 1..64", self.cpu_threads)
        _check(_is_number(self.shutdown_timeout_s) and self.shutdown_timeout_s >= 0,
               "shutdown_timeout_s", "≥ 0", self.shutdown_timeout_s)
        _check(isinstance(self.cors_origins, tuple) and all(map(is_origin, self.cors_origins)),
               "cors_origins", "a list of origins such as chrome-extension://<id> (scheme://host"
               "[:port], lower case, no path, no wildcard)", self.cors_origins)
        _check(self.backend in BACKENDS, "backend", " or ".join(BACKENDS), self.backend)
        _check(isinstance(self.ray_address, str) and (self.ray_address in ("local", "auto")
                                                      or self.ray_address.startswith("ray://")),
               "ray_address", "local, auto or ray://host:port", self.ray_address)
        _check(_is_int(self.replicas) and 1 <= self.replicas <= 4096, "replicas",
               "an int in 1..4096", self.replicas)
        _check(self.autoscale is None or (
            isinstance(self.autoscale, tuple) and len(self.autoscale) == 2
            and all(map(_is_int, self.autoscale)) and 1 <= self.autoscale[0] <= self.autoscale[1]),
            "autoscale", "null or MIN:MAX with 1 <= MIN <= MAX", self.autoscale)
        if self.autoscale is not None and self.replicas != 1:
            raise ConfigError("service settings replicas and autoscale exclude each other: "
                              "give a fixed number of replicas or an autoscaling range")
        _check(_is_number(self.replica_cpus) and self.replica_cpus > 0, "replica_cpus", "> 0",
               self.replica_cpus)
        _check(self.replica_gpus is None
               or (_is_number(self.replica_gpus) and self.replica_gpus >= 0),
               "replica_gpus", "null or a number >= 0", self.replica_gpus)

    @property
    def gather_s(self) -> float:
        return self.gather_ms / 1000.0

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.token is not None:
            shown["token"] = "<hidden>"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """The settings from a YAML file, then the environment, then ``overrides`` (flags).

    Args:
        path: the YAML file; None reads ``$GRASP_GUARD_SERVICE_CONFIG`` when set, else the
            shipped ``service.yaml`` (whose values are the embedded defaults).
        env: the environment (default ``os.environ``); ``GRASP_GUARD_TOKEN`` sets the token,
            ``GRASP_GUARD_SERVICE_CONFIG`` the file.
        overrides: settings fields; None means "not given".

    Raises:
        ConfigError: an unreadable file, unknown keys, or invalid values.
    """
    env = os.environ if env is None else env
    file_values = _read_yaml(
        Path(path) if path is not None else config_path("service.yaml", SERVICE_CONFIG_ENV, env))
    token = env.get(TOKEN_ENV) or None
    merged = dict(file_values)
    if token is not None:
        merged["token"] = token
    merged.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(merged) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown service setting(s): {', '.join(sorted(unknown))}")
    for key in ("models", "cors_origins", "autoscale"):
        if isinstance(merged.get(key), list):
            merged[key] = tuple(merged[key])
    if isinstance(merged.get("autoscale"), str):
        try:
            merged["autoscale"] = parse_autoscale(merged["autoscale"])
        except ValueError as exc:
            raise ConfigError(f"service setting autoscale: {exc}") from exc
    # Validated once, on the final values: a flag's token may be what makes the file's host
    # valid.
    return Settings(**merged)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the service settings {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the service settings must be a mapping of keys to values")
    return data
