#!/usr/bin/env bash
# The whole-photo table on a CPU, over as many sessions as it takes, at one pinned revision:
# every photo of the shared set goes through bench/photos.py (the defaults, one thread per
# worker) in a fixed shuffled order, and its JSON row is kept under the results folder, so a
# later session goes on with the photos not yet done and an interrupted run is a random sample.
#
#   bash bench/photos_queue.sh run REV [WORKERS]   # protect the photos not yet done (default 2
#                                                  # workers; one run at a time on a machine)
#   NO_START_AFTER=04:30 bash bench/photos_queue.sh run REV   # no photo started after 04:30
#                                                  # UTC: a photo stopped unfinished is lost
#   bash bench/photos_queue.sh table REV           # photos.md / photos.json of the rows so far
#
# Rows: bench/results/photos-cpu-REV/rows/PHOTO.json; the order (seed 11): .../order.txt;
# photos named in .../deferred.txt (too long for one session's run) go after all the others.
# The photos run from a worktree of REV (/tmp/photos-queue-REV), so the checkout may move on.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD" py="$PWD/.venv/bin/python" faces="$(cd ../shared/data/faces && pwd)"
action="${1:?run or table}" rev="$(git rev-parse --short "${2:?a git revision}")"
results="$root/bench/results/photos-cpu-$rev" tree="/tmp/photos-queue-$rev" scratch="/tmp/photos-queue-$rev-run"
mkdir -p "$results/rows" "$scratch"
[ -d "$tree" ] || git worktree add -f --detach "$tree" "$rev" >/dev/null
[ -f "$results/order.txt" ] || "$py" -c 'import random, sys
names = sorted(sys.argv[1:]); random.Random(11).shuffle(names); print("\n".join(names))' \
    $(cd "$faces" && ls | grep -iE '\.(jpe?g|png|webp|heic)$') > "$results/order.txt"

# The order, with the photos deferred.txt names (longer than one session's run) last.
queue_order() {
    if [ -f "$results/deferred.txt" ]; then
        grep -vxFf "$results/deferred.txt" "$results/order.txt"; cat "$results/deferred.txt"
    else cat "$results/order.txt"; fi
}

next_photo() {  # claims under a lock: two workers never take one photo
    queue_order > "$scratch/queue.$1"
    flock "$scratch/lock" bash -c 'while read -r p; do
        [ -e "$1/rows/$p.json" ] || [ -e "$2/claim.$p" ] || { touch "$2/claim.$p"; echo "$p"; break; }
        done < "$3"' _ "$results" "$scratch" "$scratch/queue.$1"
}

# The next time of day NO_START_AFTER (UTC) names, as epoch seconds; never when unset.
no_start_after=never
if [ -n "${NO_START_AFTER:-}" ]; then
    no_start_after=$(date -u -d "$NO_START_AFTER" +%s)
    [ "$no_start_after" -gt "$(date +%s)" ] || no_start_after=$((no_start_after + 86400))
fi

worker() {
    local photo
    while { [ "$no_start_after" = never ] || [ "$(date +%s)" -lt "$no_start_after" ]; } &&
            photo="$(next_photo "$1")" && [ -n "$photo" ]; do
        echo "$(date -u +%FT%TZ) start $photo" >> "$scratch/worker$1.log"
        # a photo with no face prints its row, then exits non-zero (no table to write)
        (cd "$tree" && OMP_NUM_THREADS=1 PYTHONPATH="$tree:$tree/sdk" "$py" bench/photos.py \
            --faces "$faces" --photos "$photo" --out "$scratch/out.$photo") > "$scratch/log.$photo" 2>&1 || true
        if grep -q '^{' "$scratch/log.$photo"; then
            grep '^{' "$scratch/log.$photo" > "$results/rows/$photo.json"
        fi
        echo "$(date -u +%FT%TZ) end $photo" >> "$scratch/worker$1.log"
    done
}

case "$action" in
run)
    rm -f "$scratch"/claim.*  # claims of an earlier, interrupted run
    for w in $(seq "${3:-2}"); do worker "$w" & done
    wait ;;
table)
    cat "$results"/rows/*.json > "$scratch/rows.jsonl"
    # The rows' product code, this checkout's table writer (it only labels and averages).
    (cd "$tree" && PYTHONPATH="$tree:$tree/sdk" "$py" "$root/bench/photos.py" --faces "$faces" \
        --rows-from "$scratch/rows.jsonl" --out "$results")
    # The header says how the rows were made, not how this run wrote the tables.
    n_photos=$(wc -l < "$scratch/rows.jsonl")
    "$py" - "$results/photos.md" "$rev" "$n_photos" <<'PY'
import sys
path, rev, n = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(path, encoding="utf-8").read().split("\n")
header = [
    f"- command: `bash bench/photos_queue.sh run {rev}` (each photo: `bench/photos.py --faces "
    "../shared/data/faces --photos P`, defaults, one torch thread), then "
    f"`bash bench/photos_queue.sh table {rev}`",
    f"- faces: the shared real photos (../shared/data/faces, PROVENANCE.md) in `order.txt`'s "
    f"shuffled order, n = {n} photos so far; faces found by CenterFace in each run",
    "- surrogate and judge: cyclegan-vintage, real trained weights (vintagify 0.1.2), the default set",
    f"- git: `{rev}` for every row; machine: the developer CPU, 2 cores, two photos at a time "
    "with one torch thread each (README.md: sessions, load)",
]
body = [line for line in lines[1:] if not line.startswith(("- command:", "- git:", "- machine:",
                                                             "- torch_threads:", "- photos:"))]
open(path, "w", encoding="utf-8").write("\n".join([lines[0], "", *header, *body[1:]]))
PY
    ;;
*) echo "unknown action $action: run or table" >&2; exit 2 ;;
esac
