"""AttGAN generator, checkpoint-compatible with the PyTorch port's CelebA releases.

He et al., "AttGAN: Facial Attribute Editing by Only Changing What You Want", IEEE TIP 2019;
PyTorch port by Elvis Yu-Jing Lin (``AttGAN-PyTorch``). Module names, shapes, label mapping
and conflict rules follow its ``attgan.py``, ``nn.py``, ``data.py`` and ``test.py``, so a
``weights.N.pth`` file (``{'G': state_dict}``) loads unchanged next to its ``setting.txt``
(see shared/design/MODELS.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from grasp_guard.errors import CheckpointError, ConfigError
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.stargan import HAIR_COLOURS
from grasp_guard.models.weights import load_state_dict_strict, read_checkpoint

logger = logging.getLogger(__name__)

ATTGAN_ATTRIBUTES = (
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "No_Beard",
    "Pale_Skin",
    "Young",
)
MAX_DIM = 64 * 16
SETTINGS_FILE = "setting.txt"

# check_attribute_conflict of the official data.py: setting an attribute in the first group to 1
# sets every *other* attribute of the second group to 0.
_EXCLUSIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("Bald", "Receding_Hairline"), ("Bangs",)),
    (("Bangs",), ("Bald", "Receding_Hairline")),
    (HAIR_COLOURS, HAIR_COLOURS),
    (("Straight_Hair", "Wavy_Hair"), ("Straight_Hair", "Wavy_Hair")),
    (("Mustache", "No_Beard"), ("Mustache", "No_Beard")),
)
_NORMS = ("batchnorm", "instancenorm", "none")
_ACTIVATIONS = {
    "relu": nn.ReLU,
    "lrelu": nn.LeakyReLU,  # slope 0.01, the official default
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# The fields of setting.txt that fix the generator's keys and shapes.
_ARCHITECTURE_FIELDS = (
    "enc_dim",
    "enc_layers",
    "enc_norm",
    "enc_acti",
    "dec_dim",
    "dec_layers",
    "dec_norm",
    "dec_acti",
    "shortcut_layers",
    "inject_layers",
    "img_size",
    "attributes",
)


@dataclass(frozen=True)
class AttGANConfig:
    """The generator options of ``setting.txt`` plus the test-time label scales."""

    enc_dim: int = 64
    enc_layers: int = 5
    enc_norm: str = "batchnorm"
    enc_acti: str = "lrelu"
    dec_dim: int = 64
    dec_layers: int = 5
    dec_norm: str = "batchnorm"
    dec_acti: str = "relu"
    shortcut_layers: int = 1
    inject_layers: int = 0
    img_size: int = 128
    attributes: tuple[str, ...] = ATTGAN_ATTRIBUTES
    thres_int: float = 0.5
    test_int: float = 1.0

    def __post_init__(self) -> None:
        for field in ("enc_norm", "dec_norm"):
            if getattr(self, field) not in _NORMS:
                raise ConfigError(
                    f"AttGAN {field} must be one of {_NORMS}, got {getattr(self, field)!r}"
                )
        for field in ("enc_acti", "dec_acti"):
            if getattr(self, field) not in _ACTIVATIONS:
                raise ConfigError(
                    f"AttGAN {field} must be one of {tuple(_ACTIVATIONS)}, "
                    f"got {getattr(self, field)!r}"
                )
        if self.img_size % 2**self.enc_layers:
            raise ConfigError(
                f"AttGAN img_size {self.img_size} is not divisible by 2**{self.enc_layers}"
            )
        if not self.attributes:
            raise ConfigError("AttGAN needs at least one attribute")

    @property
    def n_attrs(self) -> int:
        return len(self.attributes)

    def architecture_mismatches(self, other: AttGANConfig) -> list[str]:
        """``field: mine != other`` for every architecture field on which the two differ."""
        return [
            f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in _ARCHITECTURE_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]


def parse_settings(settings: Mapping[str, object]) -> AttGANConfig:
    """An :class:`AttGANConfig` from the JSON of an official ``setting.txt``.

    Unknown keys (training options) are ignored; ``test_int`` is a test-time choice and is
    not taken from the file.

    Raises:
        ConfigError: a field has the wrong type or an unsupported value.
    """
    values: dict[str, object] = {}
    for field in dataclasses.fields(AttGANConfig):
        key = "attrs" if field.name == "attributes" else field.name
        if field.name != "test_int" and key in settings:
            values[field.name] = _coerce(key, settings[key], field.default)
    return AttGANConfig(**values)  # type: ignore[arg-type]


def _coerce(key: str, value: object, default: object) -> object:
    if isinstance(default, tuple):
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        expected = "a list of attribute names"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    else:
        if isinstance(value, str):
            return value
        expected = "a string"
    raise ConfigError(f"setting.txt {key!r} must be {expected}, got {value!r}")


def find_settings(weights: Path) -> Path | None:
    """The ``setting.txt`` of a checkpoint: beside it, or one level up.

    The official layout is ``<experiment>/setting.txt`` with the weights in
    ``<experiment>/checkpoint/weights.N.pth``.
    """
    for folder in (weights.parent, weights.parent.parent):
        candidate = folder / SETTINGS_FILE
        if candidate.is_file():
            return candidate
    return None


def read_settings(path: Path) -> AttGANConfig:
    """Parse a ``setting.txt`` file (JSON)."""
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read AttGAN settings {path}: {exc}") from exc
    if not isinstance(settings, dict):
        raise ConfigError(f"AttGAN settings {path} must hold a JSON object")
    return parse_settings(settings)


class _Block(nn.Module):
    """The official ``Conv2dBlock`` / ``ConvTranspose2dBlock``: conv, norm, activation."""

    def __init__(self, conv: nn.Module, channels: int, norm: str, acti: str) -> None:
        super().__init__()
        layers = [conv]
        if norm == "batchnorm":
            layers.append(nn.BatchNorm2d(channels))
        elif norm == "instancenorm":
            layers.append(nn.InstanceNorm2d(channels, affine=True))
        layers.append(_ACTIVATIONS[acti]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Generator(nn.Module):
    """The AttGAN encoder-decoder: (B, 3, S, S) in [-1, 1] and attributes (B, A) → (B, 3, S, S).

    Convolutions carry a bias only where the block has no norm, as in the official code.
    """

    def __init__(
        self,
        enc_dim: int = 64,
        enc_layers: int = 5,
        enc_norm: str = "batchnorm",
        enc_acti: str = "lrelu",
        dec_dim: int = 64,
        dec_layers: int = 5,
        dec_norm: str = "batchnorm",
        dec_acti: str = "relu",
        n_attrs: int = 13,
        shortcut_layers: int = 1,
        inject_layers: int = 0,
        img_size: int = 128,
    ) -> None:
        super().__init__()
        self.shortcut_layers = min(shortcut_layers, dec_layers - 1)
        self.inject_layers = min(inject_layers, dec_layers - 1)
        self.f_size = img_size // 2**enc_layers

        blocks: list[nn.Module] = []
        conv: nn.Module
        n_in = 3
        for i in range(enc_layers):
            n_out = min(enc_dim * 2**i, MAX_DIM)
            conv = nn.Conv2d(n_in, n_out, 4, stride=2, padding=1, bias=enc_norm == "none")
            blocks.append(_Block(conv, n_out, enc_norm, enc_acti))
            n_in = n_out
        self.enc_layers = nn.ModuleList(blocks)

        blocks = []
        n_in += n_attrs
        for i in range(dec_layers):
            if i < dec_layers - 1:
                n_out = min(dec_dim * 2 ** (dec_layers - i - 1), MAX_DIM)
                conv = nn.ConvTranspose2d(
                    n_in, n_out, 4, stride=2, padding=1, bias=dec_norm == "none"
                )
                blocks.append(_Block(conv, n_out, dec_norm, dec_acti))
                n_in = n_out
                if self.shortcut_layers > i:
                    n_in += n_in // 2
                if self.inject_layers > i:
                    n_in += n_attrs
            else:
                conv = nn.ConvTranspose2d(n_in, 3, 4, stride=2, padding=1, bias=True)
                blocks.append(_Block(conv, 3, "none", "tanh"))
        self.dec_layers = nn.ModuleList(blocks)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        zs = []
        for layer in self.enc_layers:
            x = layer(x)
            zs.append(x)
        return zs

    def decode(self, zs: list[torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        # Tiles follow the feature size; at img_size it equals the official f_size * 2**i.
        z = torch.cat([zs[-1], _tile(a, zs[-1])], dim=1)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, zs[len(self.dec_layers) - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, _tile(a, z)], dim=1)
        return z

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), a)

    @property
    def output_conv(self) -> nn.Module:
        """The last transposed conv: only ``tanh`` follows it."""
        last = self.dec_layers[-1]
        assert isinstance(last, _Block)
        return last.layers[0]


def _tile(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.view(a.size(0), -1, 1, 1).expand(-1, -1, like.size(2), like.size(3))


def build_generator(config: AttGANConfig) -> Generator:
    """A randomly initialised generator with ``config``'s architecture."""
    return Generator(
        config.enc_dim,
        config.enc_layers,
        config.enc_norm,
        config.enc_acti,
        config.dec_dim,
        config.dec_layers,
        config.dec_norm,
        config.dec_acti,
        config.n_attrs,
        config.shortcut_layers,
        config.inject_layers,
        config.img_size,
    )


def resolve_conflicts(
    labels: torch.Tensor, attribute: str, attributes: tuple[str, ...]
) -> torch.Tensor:
    """The official ``check_attribute_conflict`` for one label vector (0/1 values).

    When ``attribute`` is set, the attributes it excludes are cleared: another hair colour,
    Bangs for Bald (and back), No_Beard for Mustache (and back).

    Returns:
        A new (A,) tensor.
    """
    out = labels.clone()
    index = attributes.index(attribute)
    if out[index] == 0:
        return out
    for triggers, cleared in _EXCLUSIONS:
        if attribute in triggers:
            for name in cleared:
                if name != attribute and name in attributes:
                    out[attributes.index(name)] = 0.0
    return out


def attgan_conditions(
    labels: torch.Tensor,
    attributes: tuple[str, ...],
    thres_int: float = 0.5,
    test_int: float = 1.0,
) -> torch.Tensor:
    """The official test edits: the source labels, then each attribute flipped in turn.

    Labels map to ``(2a - 1) * thres_int``; the flipped attribute is scaled to ``±test_int``.

    Args:
        labels: (A,) source labels in {0, 1}.
    Returns:
        (1 + A, A) generator inputs, row 0 the reconstruction.
    Raises:
        ValueError: ``labels`` is not a vector of ``len(attributes)`` values in {0, 1}.
    """
    if labels.shape != (len(attributes),):
        raise ValueError(f"labels must have shape ({len(attributes)},), got {tuple(labels.shape)}")
    labels = labels.float()
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 or 1")
    rows = [(labels * 2 - 1) * thres_int]
    for i, name in enumerate(attributes):
        flipped = labels.clone()
        flipped[i] = 1 - flipped[i]
        row = (resolve_conflicts(flipped, name, attributes) * 2 - 1) * thres_int
        row[i] = row[i] * test_int / thres_int
        rows.append(row)
    return torch.stack(rows)


class AttGANEditor(Editor):
    """An AttGAN generator behind the :class:`Editor` convention.

    Use it in eval mode (the official test code calls ``.eval()``: BatchNorm running stats);
    ``conditions`` rows are already on the generator's label scale.
    """

    def __init__(self, generator: Generator, info: EditorInfo, config: AttGANConfig) -> None:
        super().__init__()
        self.generator = generator
        self.info = info
        self.config = config

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.zeros(len(self.info.attributes))
        return attgan_conditions(
            labels, self.info.attributes, self.config.thres_int, self.config.test_int
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(self.to_model_space(x), c)


def calibrate_batchnorm(editor: AttGANEditor, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of ``x`` under every test edit.

    Seeded random weights come with running stats of 0 and 1; in eval mode the net then
    shrinks its activations layer after layer and outputs a constant, which no perturbation
    can move. Estimating the statistics on real images, as training would, makes the seeded
    net a working mechanics check.

    Args:
        x: (N, 3, H, W) images in [0, 1] at the editor's resolution.
    """
    norms = [m for m in editor.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    cond = editor.conditions()
    batch = x.repeat_interleave(len(cond), dim=0)
    labels = cond.repeat(len(x), 1)
    momenta = [m.momentum for m in norms]
    with torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one pass gives the batch's own stats
        editor.generator.train()
        editor(batch, labels)
        editor.generator.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def attgan_info(name: str, config: AttGANConfig, *, seeded: bool = False) -> EditorInfo:
    return EditorInfo(name, config.img_size, config.attributes, seeded=seeded)


def load_attgan(
    path: str | Path, config: AttGANConfig | None = None, *, name: str = "attgan"
) -> AttGANEditor:
    """Load an official AttGAN checkpoint, frozen and in eval mode.

    The architecture comes from ``setting.txt`` (beside the file or one level up) when there
    is one, else from ``config`` (default: 128 px, shortcut 1, inject 0). When both exist they
    must describe the same architecture.

    Args:
        path: ``weights.N.pth`` holding ``{'G': state_dict, ...}`` ('D' and optimiser states
            may be present and are ignored).
        config: the expected architecture and test-time scales.
        name: the editor's name in :class:`EditorInfo`.
    Raises:
        CheckpointError: unreadable file, no 'G' entry, settings that contradict ``config``,
            or missing, unexpected or mis-shaped keys (named).
    """
    path = Path(path)
    settings_path = find_settings(path)
    settings = read_settings(settings_path) if settings_path is not None else None
    if config is None:
        config = settings or AttGANConfig()
    elif settings is not None:
        mismatches = config.architecture_mismatches(settings)
        if mismatches:
            raise CheckpointError(
                f"{settings_path} describes another AttGAN than expected "
                f"(expected != file): {'; '.join(mismatches)}"
            )
        config = dataclasses.replace(config, thres_int=settings.thres_int)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "G" not in checkpoint:
        found = (
            sorted(map(str, checkpoint))
            if isinstance(checkpoint, dict)
            else type(checkpoint).__name__
        )
        raise CheckpointError(
            f"{path} is not an AttGAN checkpoint {{'G': state_dict}}: found {found}"
        )
    generator = build_generator(config)
    load_state_dict_strict(generator, checkpoint["G"], source=str(path))
    logger.info("loaded AttGAN %s from %s (settings: %s)", name, path, settings_path)
    editor = AttGANEditor(generator, attgan_info(name, config), config)
    editor.eval().freeze()
    return editor
