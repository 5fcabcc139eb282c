#!/usr/bin/env bash
# The GPU measurements as one prepared device call: GRASP throughput (seeded StarGAN-128 and
# the default surrogate set under `balanced`, batches 1-64) and whole photos end to end
# (bench/photos.py, the defaults) on one part of the shared real photos.
#
#   here:          bash bench/device_check.sh prepare [PART]    (PART 1, 2 or 3; default 1)
#   device tool:   run(command="bash bench/device_check.sh run", carry=[".device"], timeout_s=590)
#   a smoke test here: DEVICE=cpu TIMING_S=20 PHOTOS_S=20 PYTHON=.venv/bin/python bash bench/device_check.sh run
#
# `prepare` fills .device/ (git-ignored): the cached CycleGAN weights with their registry (the
# device cannot fetch them) and the photos of PART, the shared photos by file size in three
# parts that each fit the tree's 64 MiB beside the weights. `run` writes timing.md, the
# photos' tables and their log (one JSON row per photo, for `photos.py --rows-from` if the
# call stops early) under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local part="${1:-1}" cache="${GRASP_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grasp-guard/models}"
    local faces="../shared/data/faces"
    [ -f "$cache/registry.json" ] || { echo "no cached weights in $cache: run make setup" >&2; exit 1; }
    rm -rf .device && mkdir -p .device/faces
    cp -r "$cache" .device/models
    # Photos by size, dealt into three parts of about equal bytes (every third one).
    ls -S "$faces" | grep -iE '\.(jpe?g|png|webp)$' | awk -v p="$part" 'NR % 3 == p % 3' |
        while read -r name; do cp "$faces/$name" .device/faces/; done
    du -sh .device/models .device/faces
}

run() {
    export GRASP_GUARD_CACHE="$PWD/.device/models" PYTHONPATH="$PWD:$PWD/sdk" PYTHONUNBUFFERED=1
    local out="${OUT:-/tmp/device-out}" py="${PYTHON:-python3}" device="${DEVICE:-cuda}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    # Each step on its own clock: one running out does not cost the others their turn.
    timeout "${TIMING_S:-60}" "$py" bench/grasp_timing.py --device "$device" \
        --batches 1 8 32 64 | tee "$out/timing.md" || true
    timeout "${TIMING_S:-120}" "$py" bench/grasp_timing.py --device "$device" \
        --batches 1 8 32 64 --models default --preset balanced | tee -a "$out/timing.md" || true
    timeout "${PHOTOS_S:-330}" "$py" bench/photos.py --faces .device/faces \
        --out "$out/photos" | tee "$out/photos.log" || true
}

case "${1:-}" in
    prepare) prepare "${2:-1}" ;;
    run) run ;;
    *) echo "usage: $0 prepare [PART] | run" >&2; exit 2 ;;
esac
