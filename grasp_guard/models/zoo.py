"""The model zoo: the named surrogate editors of ``config/models.yaml`` and how to load them.

``load_editor(name)`` is the one entry point for the engine: the embedded reference
surrogate, an official checkpoint from the weights cache, or (``seeded=True``) the
full-size architecture with seeded random weights — a mechanics check, never a protection
claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from grasp_guard.errors import ConfigError, WeightsUnavailableError
from grasp_guard.models.attgan import (
    AttGANConfig,
    AttGANEditor,
    attgan_info,
    build_generator,
    calibrate_batchnorm,
    find_settings,
    load_attgan,
)
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.reference import load_reference, reference_info
from grasp_guard.models.seeded import calibration_images, match_output_contrast
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, Generator, StarGANEditor
from grasp_guard.models.weights import (
    DEFAULT_TIMEOUT_S,
    SAFE_NAME,
    CacheRecord,
    WeightsCache,
    default_cache_dir,
    load_state_dict_strict,
    read_checkpoint,
)

logger = logging.getLogger(__name__)

DEFAULT_ZOO_PATH = Path(__file__).resolve().parents[2] / "config" / "models.yaml"
ARCHITECTURES = ("reference", "stargan", "attgan")
_STARGAN_OPTIONS = {"conv_dim": 64, "repeat_num": 6}
_FILE_HINTS = {"stargan": "200000-G.ckpt", "attgan": "weights.49.pth"}
_KEYS = {
    "architecture",
    "description",
    "resolution",
    "attributes",
    "options",
    "url",
    "archive_member",
    "sha256",
}


@dataclass(frozen=True)
class ModelEntry:
    """One editor of the zoo (see config/models.yaml for the meaning of each field)."""

    name: str
    architecture: str
    description: str
    resolution: int
    attributes: tuple[str, ...]
    options: Mapping[str, object] = field(default_factory=dict)
    url: str | None = None
    archive_member: str | None = None
    sha256: str | None = None

    @property
    def embedded(self) -> bool:
        return self.architecture == "reference"

    @property
    def n_edits(self) -> int:
        """Test edits per image: AttGAN adds the reconstruction to one flip per attribute."""
        return len(self.attributes) + (1 if self.architecture == "attgan" else 0)


def parse_zoo(data: object) -> dict[str, ModelEntry]:
    """Entries from the parsed YAML document ``{'models': {name: {...}}}``.

    Raises:
        ConfigError: naming the entry and field at fault.
    """
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise ConfigError("the model zoo must hold a non-empty 'models' mapping")
    return {str(name): parse_entry(str(name), raw) for name, raw in models.items()}


def parse_entry(name: str, raw: object) -> ModelEntry:
    """One :class:`ModelEntry`, its options checked against its architecture."""
    if not isinstance(raw, dict):
        raise ConfigError(f"model {name!r}: expected a mapping, got {raw!r}")
    if unknown := set(raw) - _KEYS:
        raise ConfigError(f"model {name!r}: unknown fields {sorted(unknown)}")
    architecture = raw.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"model {name!r}: architecture must be one of {ARCHITECTURES}, got {architecture!r}"
        )
    description = str(raw.get("description", ""))
    if architecture == "reference":
        if extra := set(raw) - {"architecture", "description"}:
            raise ConfigError(f"model {name!r}: the embedded reference takes no {sorted(extra)}")
        info = reference_info()
        return ModelEntry(name, architecture, description, info.resolution, info.attributes)
    resolution = raw.get("resolution")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ConfigError(
            f"model {name!r}: resolution must be a positive integer, got {resolution!r}"
        )
    attributes = raw.get("attributes")
    if (
        not isinstance(attributes, list)
        or not attributes
        or not all(isinstance(a, str) for a in attributes)
    ):
        raise ConfigError(f"model {name!r}: attributes must be a non-empty list of names")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"model {name!r}: options must be a mapping")
    url, member, sha256 = raw.get("url"), raw.get("archive_member"), raw.get("sha256")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("https://", "http://"))
    ):
        raise ConfigError(f"model {name!r}: url must be an http(s) URL or null, got {url!r}")
    if member is not None and (not isinstance(member, str) or not SAFE_NAME.fullmatch(member)):
        raise ConfigError(
            f"model {name!r}: archive_member must be a bare file name, got {member!r}"
        )
    if sha256 is not None and (
        not isinstance(sha256, str)
        or len(sha256) != 64
        or not all(c in "0123456789abcdefABCDEF" for c in sha256)
    ):
        raise ConfigError(f"model {name!r}: sha256 must be 64 hex digits or null, got {sha256!r}")
    entry = ModelEntry(
        name,
        architecture,
        description,
        resolution,
        tuple(attributes),
        dict(options),
        url,
        member,
        sha256.lower() if sha256 else None,
    )
    if architecture == "stargan":
        stargan_options(entry)
    else:
        attgan_config(entry)
    return entry


def load_zoo(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """Read the zoo file (default: the repository's ``config/models.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_ZOO_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the model zoo {path}: {exc}") from exc
    return parse_zoo(data)


def get_entry(name: str, zoo: Mapping[str, ModelEntry] | None = None) -> ModelEntry:
    zoo = load_zoo() if zoo is None else zoo
    if name not in zoo:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(zoo)}")
    return zoo[name]


def stargan_options(entry: ModelEntry) -> dict[str, int]:
    """``conv_dim`` and ``repeat_num`` of a StarGAN entry (defaults: the official 64 and 6)."""
    if unknown := set(entry.options) - set(_STARGAN_OPTIONS):
        raise ConfigError(f"model {entry.name!r}: unknown StarGAN options {sorted(unknown)}")
    options = {**_STARGAN_OPTIONS, **entry.options}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(
                f"model {entry.name!r}: StarGAN {key} must be a positive integer, got {value!r}"
            )
    return options  # type: ignore[return-value]


def attgan_config(entry: ModelEntry) -> AttGANConfig:
    """The :class:`AttGANConfig` of an AttGAN entry (``img_size`` is its resolution)."""
    try:
        return AttGANConfig(**entry.options, img_size=entry.resolution, attributes=entry.attributes)  # type: ignore[arg-type]
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"model {entry.name!r}: invalid AttGAN options: {exc}") from exc


def load_stargan(
    path: str | Path,
    *,
    name: str = "stargan-celeba-128",
    conv_dim: int = 64,
    repeat_num: int = 6,
    attributes: tuple[str, ...] = CELEBA_ATTRIBUTES,
    resolution: int = 128,
) -> StarGANEditor:
    """Load an official StarGAN generator checkpoint (a plain state_dict, e.g. ``200000-G.ckpt``).

    The editor normalises with per-instance statistics, as the official test code does.

    Raises:
        CheckpointError: unreadable file, or missing, unexpected or mis-shaped keys (named);
            only ``num_batches_tracked`` entries may be absent.
    """
    generator = Generator(conv_dim=conv_dim, c_dim=len(attributes), repeat_num=repeat_num)
    load_state_dict_strict(generator, read_checkpoint(path), source=str(path))
    logger.info("loaded StarGAN %s from %s", name, path)
    editor = StarGANEditor(generator, EditorInfo(name, resolution, attributes))
    editor.eval().freeze()
    return editor


def _checkpoint_loader(entry: ModelEntry) -> Callable[[Path], Editor]:
    if entry.architecture == "stargan":
        options = stargan_options(entry)
        return lambda path: load_stargan(
            path,
            name=entry.name,
            attributes=entry.attributes,
            resolution=entry.resolution,
            **options,
        )
    if entry.architecture == "attgan":
        config = attgan_config(entry)
        return lambda path: load_attgan(path, config, name=entry.name)
    raise ConfigError(
        f"{entry.name} is embedded in the package: there are no weights to fetch or add"
    )


def _seeded_editor(entry: ModelEntry, seed: int, match_contrast: bool) -> Editor:
    if entry.embedded:
        raise ConfigError(
            f"{entry.name} is a trained embedded model: seeded weights apply to the "
            "official architectures"
        )
    photos = calibration_images(entry.resolution)
    editor: StarGANEditor | AttGANEditor
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        torch.manual_seed(seed)
        if entry.architecture == "stargan":
            options = stargan_options(entry)
            generator = Generator(
                conv_dim=options["conv_dim"],
                c_dim=len(entry.attributes),
                repeat_num=options["repeat_num"],
            )
            info = EditorInfo(entry.name, entry.resolution, entry.attributes, seeded=True)
            editor = StarGANEditor(generator, info)
        else:
            config = attgan_config(entry)
            editor = AttGANEditor(
                build_generator(config), attgan_info(entry.name, config, seeded=True), config
            )
            calibrate_batchnorm(editor, photos)
    if match_contrast:
        match_output_contrast(editor, editor.generator.output_conv, photos)
    return editor


def _cache(cache: WeightsCache | str | Path | None) -> WeightsCache:
    return cache if isinstance(cache, WeightsCache) else WeightsCache(cache)


def _missing_message(entry: ModelEntry, cache: WeightsCache) -> str:
    option = "" if cache.root == default_cache_dir() else f" --cache {cache.root}"
    add = f"grasp-guard models add {entry.name} /path/to/{_FILE_HINTS[entry.architecture]}{option}"
    if entry.url is not None:
        return (
            f"weights for {entry.name} are not in the cache {cache.root}: run "
            f"`grasp-guard models fetch {entry.name}{option}` (offline: download {entry.url} "
            f"elsewhere, unzip it and run `{add}`)"
        )
    return (
        f"weights for {entry.name} are not in the cache {cache.root} and have no download URL: "
        f"get the official checkpoint and run `{add}`"
    )


def load_editor(
    name: str,
    *,
    cache: WeightsCache | str | Path | None = None,
    seeded: bool = False,
    seed: int = 0,
    match_contrast: bool = True,
    device: str | torch.device = "cpu",
    zoo: Mapping[str, ModelEntry] | None = None,
) -> Editor:
    """The frozen, eval-mode editor ``name`` on ``device``.

    Args:
        cache: the weights cache or its folder (default: ``$GRASP_GUARD_CACHE`` or
            ``~/.cache/grasp-guard/models``).
        seeded: build the full-size architecture with ``torch.manual_seed(seed)`` default
            initialisation instead of loading weights, calibrated on held-in samples
            (:mod:`grasp_guard.models.seeded`); ``info.seeded`` marks it.
        match_contrast: with ``seeded``, scale the last conv so the edits have a photo's
            contrast; ``False`` keeps PyTorch's default initialisation there.
        zoo: the entries (default: ``config/models.yaml``).
    Raises:
        ConfigError: unknown name, or ``seeded`` for the embedded reference.
        WeightsUnavailableError: the weights are not in the cache (the message gives the
            ``grasp-guard models fetch/add`` command).
        CheckpointError: the cached file does not match the architecture.
    """
    entry = get_entry(name, zoo)
    editor: Editor
    if seeded:
        editor = _seeded_editor(entry, seed, match_contrast)
    elif entry.embedded:
        editor = load_reference()
    else:
        weights = _cache(cache)
        path = weights.path_for(name)
        if path is None:
            raise WeightsUnavailableError(_missing_message(entry, weights))
        editor = _checkpoint_loader(entry)(path)
    return editor.to(device).eval().freeze()


def fetch_weights(
    name: str,
    *,
    cache: WeightsCache | str | Path | None = None,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    zoo: Mapping[str, ModelEntry] | None = None,
) -> CacheRecord:
    """Download ``name``'s weights (from ``url`` or the zoo's), verify them and cache them.

    Raises:
        WeightsUnavailableError: no URL, unreachable, bad archive or SHA-256 mismatch.
        CheckpointError: the file does not load into the architecture.
    """
    entry = get_entry(name, zoo)
    loader = _checkpoint_loader(entry)
    source = url or entry.url
    if source is None:
        raise WeightsUnavailableError(_missing_message(entry, _cache(cache)))
    return _cache(cache).fetch(
        name,
        source,
        member=entry.archive_member,
        sha256=entry.sha256,
        verify=loader,
        timeout=timeout,
    )


def add_weights(
    name: str,
    path: str | Path,
    *,
    cache: WeightsCache | str | Path | None = None,
    zoo: Mapping[str, ModelEntry] | None = None,
) -> CacheRecord:
    """Register a local checkpoint for ``name`` once it loads strictly (AttGAN: with its
    ``setting.txt``, which is copied along).
    """
    entry = get_entry(name, zoo)
    loader = _checkpoint_loader(entry)
    path = Path(path).expanduser()
    extras = []
    if entry.architecture == "attgan" and (settings := find_settings(path)) is not None:
        extras.append(settings)
    return _cache(cache).add(name, path, extras=extras, sha256=entry.sha256, verify=loader)
