#!/usr/bin/env bash
# Two scans sharing one cache at once both finish with every record; SQLite's WAL mode and
# busy timeout keep them from failing each other.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree"
for i in $(seq 1 600); do
    printf 'content %d\n' "$i" >"$WORK/tree/f$i"
done

"$ATHENA" scan --json "$WORK/tree" >"$WORK/a.json" 2>"$WORK/a.err" &
pid_a=$!
"$ATHENA" scan --json "$WORK/tree" >"$WORK/b.json" 2>"$WORK/b.err" &
pid_b=$!
set +e
wait "$pid_a"
rc_a=$?
wait "$pid_b"
rc_b=$?
set -e

expect_eq "first scan exit" "$rc_a" 0
expect_eq "second scan exit" "$rc_b" 0
expect_eq "first scan records" "$(jq -c 'select(.type=="file" and .verdict != null)' \
    "$WORK/a.json" | wc -l)" 600
expect_eq "second scan records" "$(jq -c 'select(.type=="file" and .verdict != null)' \
    "$WORK/b.json" | wc -l)" 600
expect_eq "no warnings" "$(cat "$WORK/a.err" "$WORK/b.err" | grep -c 'warning' || true)" 0

run_athena scan --json "$WORK/tree"
expect_eq "rerun hit rate" "$(summary_field .cache.hit_rate)" 1

finish
