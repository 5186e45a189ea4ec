#!/usr/bin/env bash
# SIGINT mid-run: the run stops, prints the summary, exits 130, and a rerun finds every
# file the first run printed in the cache.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree"
python3 - "$WORK/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(40):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(500):
        with open(f"{root}/d{d}/f{f}.txt", "w") as out:
            out.write(f"file {d}/{f} " + "x" * (f % 97) + "\n")
PY

"$ATHENA" scan --json "$WORK/tree" >"$WORK/run1.json" 2>"$WORK/run1.err" &
pid=$!
# Signal once some records are out but the run is surely not done (20,000 files).
for _ in $(seq 1 200); do
    if [[ $(wc -l <"$WORK/run1.json") -ge 50 ]]; then
        break
    fi
    sleep 0.05
done
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e

expect_eq "interrupted exit status" "$rc" 130
expect_eq "summary says interrupted" \
    "$(jq -r 'select(.type=="summary") | .interrupted' "$WORK/run1.json")" true
printed=$(jq -r 'select(.type=="file" and .verdict != null) | .path' "$WORK/run1.json" | sort)
count=$(grep -c '' <<<"$printed")
checks=$((checks + 1))
if ((count >= 20000)); then
    fail "the run finished before the signal; nothing was interrupted"
fi

run_athena scan --json "$WORK/tree"
missed=$(jq -r 'select(.type=="file" and .cache=="miss") | .path' <<<"$OUT" | sort)
expect_eq "printed files answered from cache" \
    "$(comm -12 <(printf '%s\n' "$printed") <(printf '%s\n' "$missed") | grep -c '' || true)" 0
expect_eq "rerun complete" "$(summary_field .files)" 20000

finish
