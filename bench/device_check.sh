#!/usr/bin/env bash
# The GPU measurements as one prepared device call: GRASP throughput (seeded StarGAN-128 and
# the default surrogate set under `balanced` on 128- and 512-px crops, batches 1-64), then
# whole photos end to end (bench/photos.py, the defaults) on the shared real photos that fit
# the call's tree.
#
#   here:          bash bench/device_check.sh prepare
#   device tool:   run(command="bash bench/device_check.sh run", carry=[".device"], timeout_s=600)
#                  (`photos` instead of `run`: the photos alone)
#   a smoke test here: DEVICE=cpu TOTAL_S=300 TIMING_S=20 SHARDS=2 PYTHON=.venv/bin/python \
#                      bash bench/device_check.sh run
#
# `prepare` fills .device/ (git-ignored) with what the device cannot fetch: the cached CycleGAN
# weights (xz: the exact pinned bytes, smaller) with their registry, piexif's wheel, the shared
# photos under 2 MB (the three larger ones do not fit the tree's 64 MiB beside the weights) and
# the faces this machine's default detector finds in them (CenterFace once fetched; the device
# image's OpenCV 5 has no Haar cascades). `run` writes timing.md and the photos' logs (one JSON row per photo) under $OUT,
# within TOTAL_S seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local cache="${GRASP_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grasp-guard/models}"
    local faces="../shared/data/faces" py="${PYTHON:-.venv/bin/python}"
    [ -f "$cache/registry.json" ] || { echo "no cached weights in $cache: run make setup" >&2; exit 1; }
    rm -rf .device && mkdir -p .device/faces .device/wheels
    cp -r "$cache" .device/models
    rm -rf .device/models/centerface  # the boxes are found here and replayed there
    find .device/models -name '*.pth' -exec xz -T2 -6 {} \;
    "$py" -m pip download -q --no-deps -d .device/wheels piexif==1.1.3
    find "$faces" -maxdepth 1 -type f -size -2000k -regextype egrep -iregex '.*\.(jpe?g|png|webp)' \
        -exec cp {} .device/faces/ \;
    PYTHONPATH="$PWD:$PWD/sdk" "$py" bench/photos.py --faces .device/faces --detect-only \
        --boxes .device/boxes.json
    du -sh .device/*
}

setup() {
    export GRASP_GUARD_CACHE="$PWD/.device/models" PYTHONPATH="$PWD:$PWD/sdk" PYTHONUNBUFFERED=1
    out="${OUT:-/tmp/device-out}" py="${PYTHON:-python3}" device="${DEVICE:-cuda}"
    mkdir -p "$out"
    "$py" -m pip install -q --upgrade --no-index --no-deps --target /tmp/device-site .device/wheels/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/device-site"
    find .device/models -name '*.xz' -exec xz -d -k -f {} \;
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
      "$py" -c 'import sys, torch, cv2, numpy; print(sys.version.split()[0], torch.__version__, cv2.__version__, numpy.__version__)'
    } | tee "$out/preflight.txt"
}

timing() {
    # Each step on its own clock: one running out does not cost the others their turn.
    timeout "${TIMING_S:-30}" "$py" bench/grasp_timing.py --device "$device" \
        --batches 1 8 32 64 | tee "$out/timing.md" || true
    timeout "${TIMING_S:-40}" "$py" bench/grasp_timing.py --device "$device" \
        --batches 1 8 32 64 --models default --preset balanced | tee -a "$out/timing.md" || true
    timeout "${TIMING_S:-40}" "$py" bench/grasp_timing.py --device "$device" \
        --batches 1 8 32 --models default --preset balanced --crop 512 | tee -a "$out/timing.md" || true
}

photos() {
    # The photos in SHARDS processes side by side (one face's batch leaves most of the GPU
    # idle); no photo starts in the last 60 s, the hard stop is the call's end. Each shard
    # logs one JSON row per photo: `photos.py --rows-from` makes the tables of them all.
    local total="${TOTAL_S:-560}" shards="${SHARDS:-4}" i names left
    left=$((total - SECONDS > 120 ? total - SECONDS : 120))
    for ((i = 0; i < shards; i++)); do
        names=$(ls .device/faces | awk -v k="$shards" -v i="$i" 'NR % k == i' | paste -sd,)
        OMP_NUM_THREADS=$((16 / shards)) timeout "$left" "$py" bench/photos.py \
            --faces .device/faces --photos "$names" --budget-s "$((left - 60))" \
            --boxes .device/boxes.json --out "/tmp/photos-$i" > "$out/photos-$i.log" 2>&1 &
    done
    wait
    tail -n 3 "$out"/photos-*.log
}

case "${1:-}" in
    prepare) prepare ;;
    run) setup; timing; photos ;;
    photos) setup; photos ;;
    *) echo "usage: $0 prepare | run | photos" >&2; exit 2 ;;
esac
