"""The model zoo file, ``grasp_guard/config/models.yaml``: its entries, parsed and checked.

Pure parsing: each entry becomes an immutable :class:`ModelEntry`, every field checked
against its architecture, and any fault raised as a :class:`ConfigError` naming the entry
and the field. Loading the editors is :mod:`grasp_guard.models.zoo`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grasp_guard.config import ZOO_ENV, config_path
from grasp_guard.errors import ConfigError
from grasp_guard.models.attgan import AttGANConfig
from grasp_guard.models.multistyle import style_indices
from grasp_guard.models.reference import reference_info
from grasp_guard.models.weights import SAFE_NAME
from grasp_guard.models.wheels import WHEEL_REQUIREMENT

# $GRASP_GUARD_ZOO (read once, at import), else the zoo shipped in grasp_guard/config/.
DEFAULT_ZOO_PATH = config_path("models.yaml", ZOO_ENV)
ARCHITECTURES = ("reference", "stargan", "attgan", "cyclegan", "zerodce", "multistyle")
_STARGAN_OPTIONS = {"conv_dim": 64, "repeat_num": 6}
# Fully convolutional single-edit editors: their one edit's default name, and the multiple
# every side a fully convolutional editor runs at must be (the CycleGAN and the multi-style
# net downsample twice; Zero-DCE never does).
_ONE_EDIT = {"cyclegan": ("translate",), "zerodce": ("enhance",)}
_SIDE_MULTIPLE = {"cyclegan": 4, "zerodce": 1, "multistyle": 4}
_LABELS = {"cyclegan": "a CycleGAN", "zerodce": "a Zero-DCE enhancer",
           "multistyle": "a multi-style net"}
_KEYS = {
    "architecture",
    "description",
    "resolution",
    "attributes",
    "scales",
    "options",
    "url",
    "wheel",
    "archive_member",
    "sha256",
    "default",
}


@dataclass(frozen=True)
class ModelEntry:
    """One editor of the zoo (see grasp_guard/config/models.yaml for the meaning of each field)."""

    name: str
    architecture: str
    description: str
    resolution: int
    attributes: tuple[str, ...]
    options: Mapping[str, object] = field(default_factory=dict)
    url: str | None = None
    archive_member: str | None = None
    sha256: str | None = None
    scales: tuple[int, ...] = ()
    wheel: str | None = None
    default: bool = False

    @property
    def embedded(self) -> bool:
        return self.architecture == "reference"

    @property
    def n_edits(self) -> int:
        """Test edits per image: AttGAN adds the reconstruction to one flip per attribute;
        a CycleGAN makes its one translation, a Zero-DCE its one enhancement."""
        if self.architecture in _ONE_EDIT:
            return 1
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
    default = raw.get("default", False)
    if not isinstance(default, bool):
        raise ConfigError(f"model {name!r}: default must be true or false, got {default!r}")
    if architecture == "reference":
        if extra := set(raw) - {"architecture", "description", "default"}:
            raise ConfigError(f"model {name!r}: the embedded reference takes no {sorted(extra)}")
        info = reference_info()
        return ModelEntry(name, architecture, description, info.resolution, info.attributes,
                          default=default)
    resolution = raw.get("resolution")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ConfigError(
            f"model {name!r}: resolution must be a positive integer, got {resolution!r}"
        )
    attributes = raw.get("attributes")
    if attributes is None and architecture in _ONE_EDIT:
        attributes = list(_ONE_EDIT[architecture])
    if (
        not isinstance(attributes, list)
        or not attributes
        or not all(isinstance(a, str) for a in attributes)
    ):
        raise ConfigError(f"model {name!r}: attributes must be a non-empty list of names")
    if architecture in _ONE_EDIT and len(attributes) != 1:
        raise ConfigError(
            f"model {name!r}: {_LABELS[architecture]} makes one edit: attributes must name "
            f"one, got {attributes!r}"
        )
    if architecture == "multistyle":
        try:
            style_indices(tuple(attributes))
        except ValueError as exc:
            raise ConfigError(f"model {name!r}: {exc}") from exc
    scales = _parse_scales(name, architecture, resolution, raw.get("scales"))
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"model {name!r}: options must be a mapping")
    url, member, sha256 = raw.get("url"), raw.get("archive_member"), raw.get("sha256")
    wheel = raw.get("wheel")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("https://", "http://"))
    ):
        raise ConfigError(f"model {name!r}: url must be an http(s) URL or null, got {url!r}")
    if wheel is not None:
        if not isinstance(wheel, str) or not WHEEL_REQUIREMENT.fullmatch(wheel):
            raise ConfigError(
                f"model {name!r}: wheel must pin one version, NAME==VERSION, got {wheel!r}"
            )
        if url is not None:
            raise ConfigError(f"model {name!r}: give a url or a wheel, not both")
        if member is None:
            raise ConfigError(f"model {name!r}: a wheel needs the archive_member to take from it")
    if member is not None and (
        not isinstance(member, str)
        or not all(SAFE_NAME.fullmatch(part) for part in member.split("/"))
    ):
        raise ConfigError(
            f"model {name!r}: archive_member must be a file name or a relative path inside "
            f"the archive, got {member!r}"
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
        scales,
        wheel,
        default,
    )
    if architecture == "stargan":
        stargan_options(entry)
    elif architecture == "attgan":
        attgan_config(entry)
    elif options:
        raise ConfigError(
            f"model {name!r}: {_LABELS[architecture]} takes no options (its shape is read "
            f"from the checkpoint), got {sorted(options)}"
        )
    return entry


def _parse_scales(name: str, architecture: str, resolution: int, raw: object) -> tuple[int, ...]:
    """The other sizes a fully convolutional editor runs at: positive multiples of its
    side multiple (4 for a CycleGAN, any size for Zero-DCE)."""
    if raw is None and architecture not in _SIDE_MULTIPLE:
        return ()
    raw = [] if raw is None else raw
    if architecture not in _SIDE_MULTIPLE:
        raise ConfigError(
            f"model {name!r}: scales apply to fully convolutional editors "
            f"({', '.join(_SIDE_MULTIPLE)}), not {architecture}"
        )
    multiple = _SIDE_MULTIPLE[architecture]
    if not isinstance(raw, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 and s % multiple == 0
        for s in [*raw, resolution]
    ):
        kind = f"multiples of {multiple}" if multiple > 1 else "integers"
        raise ConfigError(
            f"model {name!r}: resolution and scales must be positive {kind}, "
            f"got {resolution!r} and {raw!r}"
        )
    return tuple(sorted(set(raw)))


def load_zoo(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """Read the zoo file (default: ``$GRASP_GUARD_ZOO``, else the shipped ``grasp_guard/config/models.yaml``)."""
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
