#!/usr/bin/env bash
# Redis down at the start of a run: the run succeeds with one warning, its verdicts wait in
# the local queue, and the next run that reaches Redis (or athena cache sync) pushes them.
# A server that accepts connections but never replies costs one command timeout, not a
# stall per file.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../redis_server.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "SKIP: needs redis-server and redis-cli" >&2
    exit 77
fi
SILENT_PID=""
stop_all() {
    if [[ -n $SILENT_PID ]]; then
        kill "$SILENT_PID" 2>/dev/null || true
        wait "$SILENT_PID" 2>/dev/null || true
    fi
    redis_stop_all
    cleanup
}
trap stop_all EXIT
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_REDIS_READ_ONLY

mkdir -p "$WORK/tree"
for i in $(seq 1 120); do
    printf 'offline file %d\n' "$i" >"$WORK/tree/f$i"
done

# pending_rows CACHE_DIR: verdicts queued for Redis in that cache folder.
pending_rows() {
    sqlite3 "$1/cache.db" 'SELECT count(*) FROM pending_sync'
}

# Nothing listens on the port: connection refused.
DEAD_PORT=$(_redis_free_port)
ATHENA_CACHE_DIR=$WORK/cache-a run_athena scan --json \
    --redis "redis://127.0.0.1:$DEAD_PORT/0" "$WORK/tree"
expect_eq "down at start exit" "$RC" 0
expect_eq "down at start warnings" "$(grep -c 'athena: warning' <<<"$ERR")" 1
expect_match "warning names the server" "$ERR" "redis://127.0.0.1:$DEAD_PORT/0"
expect_match "warning says what happens" "$ERR" "athena cache sync"
expect_eq "down at start verdicts" \
    "$(jq -c 'select(.type=="file" and .verdict != null)' <<<"$OUT" | wc -l)" 120
expect_eq "down at start queued" "$(pending_rows "$WORK/cache-a")" 120
expect_eq "down at start summary" "$(summary_field .analysis.redis.queued_for_sync)" 120
expect_eq "down at start is down" "$(summary_field .analysis.redis.down)" true
expect_eq "no store error" "$(summary_field .cache.store_errors)" 0

# The next run that reaches Redis pushes the queue first.
redis_start MAIN
ATHENA_CACHE_DIR=$WORK/cache-a run_athena scan --json --redis "$REDIS_MAIN_URL" "$WORK/tree"
expect_eq "reconnected exit" "$RC" 0
expect_eq "reconnected warnings" "$(grep -c warning <<<"$ERR" || true)" 0
expect_eq "reconnected pushed" "$(summary_field .analysis.redis.synced)" 120
expect_eq "queue emptied" "$(pending_rows "$WORK/cache-a")" 0
expect_eq "verdicts in Redis" "$(redis_cli MAIN --scan --pattern 'athena:*' | wc -l)" 120

# athena cache sync does the same on demand.
ATHENA_CACHE_DIR=$WORK/cache-b run_athena scan --json --redis-key-prefix "later:" \
    --redis "redis://127.0.0.1:$DEAD_PORT/0" "$WORK/tree"
expect_eq "second offline run queued" "$(pending_rows "$WORK/cache-b")" 120
ATHENA_CACHE_DIR=$WORK/cache-b run_athena cache sync --redis-key-prefix "later:" \
    --redis "$REDIS_MAIN_URL"
expect_eq "sync exit" "$RC" 0
expect_eq "sync message" "$OUT" "pushed 120 queued verdicts to $REDIS_MAIN_URL"
expect_eq "sync emptied the queue" "$(pending_rows "$WORK/cache-b")" 0
expect_eq "synced under the prefix" "$(redis_cli MAIN --scan --pattern 'later:*' | wc -l)" 120
ATHENA_CACHE_DIR=$WORK/cache-b run_athena cache sync --redis "redis://127.0.0.1:$DEAD_PORT/0"
expect_eq "sync to a dead server fails" "$RC" 2
expect_match "sync error" "$ERR" "^athena: error: .*redis://127.0.0.1:$DEAD_PORT/0"

# A server that accepts and then never replies: one command timeout, then local tiers.
python3 -c '
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
clients = []
while True:
    connection, _ = server.accept()
    clients.append(connection)
' "$WORK/silent.port" &
SILENT_PID=$!
for _ in $(seq 1 100); do
    [[ -s $WORK/silent.port ]] && break
    sleep 0.05
done
SILENT_PORT=$(cat "$WORK/silent.port")
started=$(date +%s%N)
ATHENA_CACHE_DIR=$WORK/cache-c run_athena scan --json \
    --redis "redis://127.0.0.1:$SILENT_PORT/0" "$WORK/tree"
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
expect_eq "silent server exit" "$RC" 0
expect_eq "silent server warnings" "$(grep -c 'athena: warning' <<<"$ERR")" 1
expect_match "silent server reason" "$ERR" 'no reply within 500 ms'
expect_eq "silent server queued" "$(pending_rows "$WORK/cache-c")" 120
# One timeout of 500 ms, plus the scan itself; a stall per file would take a minute.
checks=$((checks + 1))
if ((elapsed_ms > 20000)); then
    fail "silent server: the run took $elapsed_ms ms"
fi

finish
