#!/usr/bin/env bash
# The shared Redis tier against a real redis-server on 127.0.0.1: round trip between two
# cache folders, TTL, prefix isolation, pipelined lookups, promotion into the local tiers,
# read-only mode, the platform's environment variables, and the statistics command.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../redis_server.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "SKIP: needs redis-server and redis-cli" >&2
    exit 77
fi
trap 'redis_stop_all; cleanup' EXIT
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_REDIS_READ_ONLY

redis_start MAIN
URL=$REDIS_MAIN_URL

mkdir -p "$WORK/tree"
for i in $(seq 1 300); do
    printf 'shared file %d\n' "$i" >"$WORK/tree/f$i.txt"
done
age_files "$WORK/tree"

# verdict_keys PREFIX: verdict keys under the prefix (leases and breaker marks excluded).
verdict_keys() {
    redis_cli MAIN --scan --pattern "$1*" | grep -v -e ":lease:" -e ":breaker:" | wc -l
}

# A first runner analyses every file and shares the verdicts.
ATHENA_CACHE_DIR=$WORK/cache-a run_athena scan --json --redis "$URL" "$WORK/tree"
expect_eq "first runner exit" "$RC" 0
expect_eq "first runner analyses" "$(summary_field .analyses)" 300
expect_eq "first runner warnings" "$(grep -c warning <<<"$ERR" || true)" 0
expect_eq "verdicts in Redis" "$(verdict_keys athena:)" 300
expect_eq "no lease left behind" "$(redis_cli MAIN --scan --pattern 'athena:lease:*' | wc -l)" 0
key=$(redis_cli MAIN --scan --pattern 'athena:*' | sed -n 1p)
ttl=$(redis_cli MAIN ttl "$key")
expect_match "default TTL is 7 days" "$ttl" '^60[0-9]{4}$'
checks=$((checks + 1))
if ((ttl > 604800 || ttl < 604000)); then
    fail "default TTL: $ttl s is not about 604800 s"
fi
expect_match "value is versioned JSON" "$(redis_cli MAIN get "$key")" '^\{"v":1,'

# A second runner with an empty cache folder gets every verdict from Redis, in MGET batches.
redis_cli MAIN config resetstat >/dev/null
ATHENA_CACHE_DIR=$WORK/cache-b run_athena scan --json --redis "$URL" "$WORK/tree"
expect_eq "second runner exit" "$RC" 0
expect_eq "second runner analyses" "$(summary_field .analyses)" 0
expect_eq "second runner redis hits" "$(summary_field .cache.by_tier.redis)" 300
expect_eq "records from redis" \
    "$(jq -c 'select(.type=="file" and .cache=="redis" and .verdict != null)' <<<"$OUT" |
        wc -l)" 300
stats=$(redis_cli MAIN info commandstats)
mget_calls=$(grep -oE 'cmdstat_mget:calls=[0-9]+' <<<"$stats" | cut -d= -f2)
expect_eq "no GET per file" "$(grep -c 'cmdstat_get:' <<<"$stats" || true)" 0
checks=$((checks + 1))
if [[ -z $mget_calls ]] || ((mget_calls < 1 || mget_calls > 300)); then
    fail "lookups: expected between 1 and 300 MGET calls for 300 files, got '$mget_calls'"
fi
expect_eq "lookup keys counted" "$(summary_field .analysis.redis.lookup_keys)" 300
expect_eq "lookup round trips are the MGET calls" \
    "$(summary_field .analysis.redis.lookup_round_trips)" "$mget_calls"
expect_eq "promotion writes nothing to Redis" "$(grep -c 'cmdstat_set:' <<<"$stats" || true)" 0

# The hits were promoted: the same folder now hits in SQLite, without Redis.
ATHENA_CACHE_DIR=$WORK/cache-b run_athena scan --json "$WORK/tree"
expect_eq "promoted into sqlite" "$(summary_field .cache.by_tier.sqlite)" 300

# Another prefix finds none of these keys, and writes its own.
ATHENA_CACHE_DIR=$WORK/cache-c run_athena scan --json --redis "$URL" \
    --redis-key-prefix "team2:" "$WORK/tree"
expect_eq "other prefix misses" "$(summary_field .cache.misses)" 300
expect_eq "other prefix keys" "$(verdict_keys team2:)" 300
expect_eq "first prefix unchanged" "$(verdict_keys athena:)" 300

# --redis-ttl sets the lifetime.
ATHENA_CACHE_DIR=$WORK/cache-d run_athena scan --json --redis "$URL" --redis-ttl 1h \
    --redis-key-prefix "short:" "$WORK/tree"
ttl=$(redis_cli MAIN ttl "$(redis_cli MAIN --scan --pattern 'short:*' | sed -n 1p)")
checks=$((checks + 1))
if ((ttl > 3600 || ttl < 3500)); then
    fail "--redis-ttl 1h: TTL is $ttl s"
fi

# Read-only: reads shared verdicts, writes nothing (no verdicts, no leases, no queue).
printf 'only on this runner\n' >"$WORK/tree/new.txt"
ATHENA_CACHE_DIR=$WORK/cache-e run_athena scan --json --redis "$URL" --redis-read-only \
    "$WORK/tree"
expect_eq "read-only exit" "$RC" 0
expect_eq "read-only redis hits" "$(summary_field .cache.by_tier.redis)" 300
expect_eq "read-only analyses the new file" "$(summary_field .analyses)" 1
expect_eq "read-only wrote nothing" "$(verdict_keys athena:)" 300
expect_eq "read-only summary" "$(summary_field .analysis.redis.read_only)" true
rm "$WORK/tree/new.txt"

# The Athena platform's variables, and the origin that athena flags prints for them.
export REDIS_ENABLED=true REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_MAIN_PORT REDIS_KEY_PREFIX=team2:
ATHENA_CACHE_DIR=$WORK/cache-f run_athena scan --json "$WORK/tree"
expect_eq "platform variables" "$(summary_field .cache.by_tier.redis)" 300
run_athena flags
expect_match "flag origin" "$(grep '^redis-cache ' <<<"$OUT")" 'true +env REDIS_ENABLED'
expect_match "port origin" "$(grep '^redis-port ' <<<"$OUT")" "$REDIS_MAIN_PORT +env REDIS_PORT"
expect_match "prefix is shown" "$(grep '^redis-key-prefix ' <<<"$OUT")" 'team2: +env'
run_athena scan --json --disable redis-cache "$WORK/tree"
expect_eq "--disable redis-cache wins" "$(summary_field '.cache.by_tier.redis // 0')" 0
unset REDIS_ENABLED REDIS_HOST REDIS_PORT REDIS_KEY_PREFIX

# The statistics command.
ATHENA_CACHE_DIR=$WORK/cache-a run_athena cache redis-stats --json --redis "$URL"
expect_eq "stats exit" "$RC" 0
expect_eq "stats verdict keys" "$(jq -r .verdict_keys <<<"$OUT")" 300
expect_eq "stats leases" "$(jq -r .lease_keys <<<"$OUT")" 0
expect_eq "stats pending" "$(jq -r .pending_sync <<<"$OUT")" 0
ATHENA_CACHE_DIR=$WORK/cache-a run_athena cache redis-stats --redis "$URL"
expect_match "stats text" "$OUT" "^redis +$URL \\(Redis [0-9.]+\\)"
expect_match "stats text keys" "$OUT" 'verdicts +300'

finish
