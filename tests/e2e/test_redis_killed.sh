#!/usr/bin/env bash
# Redis killed in the middle of a run: the run finishes with every verdict and one warning,
# the verdicts Redis missed are queued, and after a restart athena cache sync pushes them,
# so that Redis then has a verdict for every file: nothing is lost.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../redis_server.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "SKIP: needs redis-server and redis-cli" >&2
    exit 77
fi
SCAN_PID=""
stop_all() {
    if [[ -n $SCAN_PID ]]; then
        kill "$SCAN_PID" 2>/dev/null || true
        wait "$SCAN_PID" 2>/dev/null || true
    fi
    redis_stop_all
    cleanup
}
trap stop_all EXIT
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_REDIS_READ_ONLY

# Every write is on disk before Redis replies to it, so what Redis acknowledged before the kill
# is still there after the restart, and a missing key means athena lost a verdict.
REDIS_DURABLE=(--appendonly yes --appendfsync always)
redis_start MAIN "${REDIS_DURABLE[@]}"

FILES=4000
mkdir -p "$WORK/tree"
python3 -c '
import sys
for i in range(int(sys.argv[2])):
    with open(f"{sys.argv[1]}/f{i:05d}.txt", "w") as f:
        f.write(f"file {i} of the killed run\n")
' "$WORK/tree" "$FILES"

"$ATHENA" scan --json --redis "$REDIS_MAIN_URL" "$WORK/tree" >"$WORK/run.json" \
    2>"$WORK/run.err" &
SCAN_PID=$!
# Kill Redis once a few hundred records are out, well before the run ends.
for _ in $(seq 1 600); do
    if (($(grep -c '"type":"file"' "$WORK/run.json" || true) >= 300)); then
        break
    fi
    sleep 0.02
done
before_kill=$(grep -c '"type":"file"' "$WORK/run.json" || true)
redis_kill MAIN
set +e
wait "$SCAN_PID"
rc=$?
set -e
SCAN_PID=""
OUT=$(cat "$WORK/run.json")
ERR=$(cat "$WORK/run.err")

checks=$((checks + 1))
if ((before_kill >= FILES)); then
    fail "the run ended before Redis was killed; the test needs a larger tree"
fi
expect_eq "run exit" "$rc" 0
expect_eq "one warning" "$(grep -c 'athena: warning' <<<"$ERR")" 1
expect_match "warning names the server" "$ERR" "$REDIS_MAIN_URL"
expect_eq "every verdict printed" \
    "$(jq -c 'select(.type=="file" and .verdict != null)' <<<"$OUT" | wc -l)" "$FILES"
expect_eq "no file errors" "$(summary_field .errors)" 0
expect_eq "no store errors" "$(summary_field .cache.store_errors)" 0
queued=$(sqlite3 "$ATHENA_CACHE_DIR/cache.db" 'SELECT count(*) FROM pending_sync')
checks=$((checks + 1))
if ((queued == 0)); then
    fail "nothing was queued although Redis died mid-run"
fi
expect_eq "queued count in summary" "$(summary_field .analysis.redis.queued_for_sync)" "$queued"

# Restart on the same port and data, then push the queue.
redis_restart MAIN "${REDIS_DURABLE[@]}"
run_athena cache sync --redis "$REDIS_MAIN_URL"
expect_eq "sync exit" "$RC" 0
expect_eq "sync pushed the queue" "$OUT" "pushed $queued queued verdicts to $REDIS_MAIN_URL"

# Every file's digest now has a verdict in Redis.
jq -r 'select(.type=="file") | .sha256' "$WORK/run.json" | sort -u >"$WORK/expected"
redis_cli MAIN --scan --pattern 'athena:*' | grep -v ':lease:' | cut -d: -f2 | sort -u \
    >"$WORK/actual"
expect_eq "digests in Redis" "$(wc -l <"$WORK/actual")" "$FILES"
expect_eq "no digest missing" "$(comm -23 "$WORK/expected" "$WORK/actual" | wc -l)" 0

finish
