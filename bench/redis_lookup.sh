#!/usr/bin/env bash
# Lookup throughput of the shared Redis tier: a warm run where only Redis has the verdicts
# (fresh local cache folder each time), next to redis-benchmark on the same server in the
# same run. Reports only; no figure is a pass or fail.
#
# Usage: bench/redis_lookup.sh [--files N] [--runs R]
#   --files N   corpus size (default 100000 small files from bench/make_corpus.py)
#   --runs R    warm runs of each kind (default 3); the table shows the median
# Environment: ATHENA (default build/athena), ATHENA_UNIT (default build/tests/athena_unit).
#
# Rows:
#   scan          athena scan, cache folder empty, every verdict in Redis: files per second
#                 of the whole run, and the Redis tier's lookups per second while an MGET
#                 was in flight, with the keys each MGET carried
#   scan, no SQL  the same with --disable sqlite-cache: no promotion of hits into SQLite
#   tier batch    the tier alone, 1000 keys per lookup call from one thread (decoding
#                 included), and the MGET round trips alone
#   tier 1-key    the tier alone, one key per call from 16 threads, as the pipeline calls it
#   redis-bench   redis-benchmark -P 64 -t get, 3-byte values and values of the size athena
#                 stores
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ATHENA=${ATHENA:-$ROOT/build/athena}
ATHENA_UNIT=${ATHENA_UNIT:-$ROOT/build/tests/athena_unit}
FILES=100000
RUNS=3
while (($# > 0)); do
    case $1 in
    --files) FILES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "redis_lookup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in "$ATHENA" "$ATHENA_UNIT"; do
    [[ -x $tool ]] || { echo "redis_lookup.sh: $tool is not built" >&2; exit 1; }
done
for tool in redis-server redis-cli redis-benchmark jq python3; do
    command -v "$tool" >/dev/null || { echo "redis_lookup.sh: needs $tool" >&2; exit 1; }
done

source "$ROOT/tests/redis_server.sh"
OUT=$ROOT/bench/out/redis
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/athena-redis-bench.XXXXXX")
trap 'redis_stop_all; rm -rf "$WORK"' EXIT
export XDG_CONFIG_HOME=$WORK/config NO_COLOR=1
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_CACHE_DIR

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'
}

CORPUS=$OUT/corpus-$FILES
if [[ ! -f $CORPUS/.corpus.json ]]; then
    log "generating $FILES files in $CORPUS"
    python3 "$ROOT/bench/make_corpus.py" --kind small --files "$FILES" --seed 7 --out "$CORPUS"
fi

redis_start BENCH
URL=$REDIS_BENCH_URL
log "redis-server $(redis-server --version | grep -oE 'v=[0-9.]+') on $URL"

log "filling Redis: one scan analyses every file (the slow part)"
ATHENA_CACHE_DIR=$WORK/fill "$ATHENA" scan --json -q --redis "$URL" "$CORPUS" \
    | tail -1 >"$WORK/fill.json"
# A fill run that lost Redis (a reply later than the command timeout on a loaded machine)
# queued the rest; push it, so that every verdict is in Redis before the warm runs.
ATHENA_CACHE_DIR=$WORK/fill "$ATHENA" cache sync --redis "$URL" >&2
verdicts=$(redis_cli BENCH dbsize)
value_bytes=$(redis_cli BENCH strlen "$(redis_cli BENCH --scan | sed -n 1p)")
log "Redis holds $verdicts keys; a value is about $value_bytes bytes"

# warm_run KIND ARGS...: one scan with an empty cache folder; appends
# "files_per_s lookups_per_s keys_per_mget" to $WORK/KIND.rows.
warm_run() {
    local kind=$1
    shift
    rm -rf "$WORK/warm"
    redis_cli BENCH config resetstat >/dev/null
    ATHENA_CACHE_DIR=$WORK/warm "$ATHENA" scan --json -q --redis "$URL" "$@" "$CORPUS" \
        | tail -1 >"$WORK/warm.json"
    local mget
    mget=$(redis_cli BENCH info commandstats | grep -oE 'cmdstat_mget:calls=[0-9]+' | cut -d= -f2)
    jq -r --arg mget "${mget:-0}" '
        [(.files / (.duration_ms / 1000)),
         .analysis.redis.lookup_keys_per_second,
         (if ($mget | tonumber) > 0 then .analysis.redis.lookup_keys / ($mget | tonumber)
          else 0 end),
         .cache.by_tier.redis] | @tsv' "$WORK/warm.json" >>"$WORK/$kind.rows"
}

for run in $(seq 1 "$RUNS"); do
    log "warm run $run of $RUNS"
    warm_run scan
    warm_run scan_no_sqlite --disable sqlite-cache
done

log "tier harness: $FILES keys"
ATHENA_TEST_REDIS_URL=$URL ATHENA_REDIS_BENCH_KEYS=$FILES "$ATHENA_UNIT" \
    --test-case='RedisTier: lookup throughput' >"$WORK/tier.txt" 2>&1 || true

log "redis-benchmark"
redis-benchmark -h 127.0.0.1 -p "$REDIS_BENCH_PORT" -P 64 -t get -n 2000000 -q 2>/dev/null \
    | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 >"$WORK/rb3.txt"
redis-benchmark -h 127.0.0.1 -p "$REDIS_BENCH_PORT" -P 64 -t get -n 2000000 \
    -d "${value_bytes:-700}" -q 2>/dev/null \
    | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 >"$WORK/rbv.txt"

column() {
    cut -f"$2" "$WORK/$1.rows" | median
}
rb3=$(grep -oE '^[0-9.]+' "$WORK/rb3.txt" || echo 0)
rbv=$(grep -oE '^[0-9.]+' "$WORK/rbv.txt" || echo 0)
batch=$(grep -oE 'batch lookups: .*' "$WORK/tier.txt" || echo "batch lookups: failed")
onekey=$(grep -oE 'one-key lookups .*' "$WORK/tier.txt" || echo "one-key lookups: failed")
batch_rate=$(grep -oE '= [0-9]+ lookups/s' <<<"$batch" | grep -oE '[0-9]+' || echo 0)

{
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "corpus: $FILES files; Redis held $verdicts keys, values of about $value_bytes bytes"
    for kind in scan scan_no_sqlite; do
        printf '%-14s %.0f files/s end to end; Redis lookups %.0f/s while busy; %.1f keys per MGET\n' \
            "$([[ $kind == scan ]] && echo scan || echo "scan, no SQL")" "$(column "$kind" 1)" \
            "$(column "$kind" 2)" "$(column "$kind" 3)"
    done
    printf '%-14s %s\n' "tier batch" "$batch"
    printf '%-14s %s\n' "tier 1-key" "$onekey"
    printf '%-14s %.0f GET/s (3-byte values), %.0f GET/s (%s-byte values)\n' "redis-bench" \
        "$rb3" "$rbv" "${value_bytes:-700}"
    awk -v a="$batch_rate" -v b="$rb3" -v c="$rbv" 'BEGIN {
        if (b > 0 && c > 0) {
            printf "%-14s tier batch / redis-benchmark: %.2f (3-byte), %.2f (same size)\n",
                "ratio", a / b, a / c
        }
    }'
} | tee "$OUT/last.txt"
