#!/usr/bin/env bash
# A Redis that requires a password: the password from REDIS_PASSWORD or the URL works, a
# wrong or missing one is one warning and a local run, and the password never shows in
# output, warnings, athena flags or the cache files.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../redis_server.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "SKIP: needs redis-server and redis-cli" >&2
    exit 77
fi
trap 'redis_stop_all; cleanup' EXIT
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_REDIS_READ_ONLY

PASSWORD="e2e-redis-SECRET-$RANDOM$RANDOM"
redis_start AUTH --requirepass "$PASSWORD"
PORT=$REDIS_AUTH_PORT

mkdir -p "$WORK/tree"
for i in $(seq 1 20); do
    printf 'guarded file %d\n' "$i" >"$WORK/tree/f$i"
done

# expect_no_password NAME TEXT
expect_no_password() {
    checks=$((checks + 1))
    if grep -qF -- "$PASSWORD" <<<"$2"; then
        fail "$1: shows the Redis password"
    fi
}

# The password from the platform's variable.
export REDIS_PASSWORD=$PASSWORD
ATHENA_CACHE_DIR=$WORK/cache-a run_athena scan --json --redis "redis://127.0.0.1:$PORT/0" \
    "$WORK/tree"
expect_eq "REDIS_PASSWORD exit" "$RC" 0
expect_eq "REDIS_PASSWORD warnings" "$(grep -c warning <<<"$ERR" || true)" 0
expect_eq "REDIS_PASSWORD stored" \
    "$(REDISCLI_AUTH=$PASSWORD redis_cli AUTH --scan --pattern 'athena:*' | wc -l)" 20
expect_no_password "stdout" "$OUT"
expect_no_password "stderr" "$ERR"
run_athena flags --json
expect_no_password "flags" "$OUT"
expect_eq "flags masks the password" \
    "$(jq -r '.[] | select(.name=="redis-password") | .value' <<<"$OUT")" "********"
unset REDIS_PASSWORD

# The password in the URL, given on the command line and in the environment.
ATHENA_CACHE_DIR=$WORK/cache-b run_athena scan --json \
    --redis "redis://:$PASSWORD@127.0.0.1:$PORT/0" "$WORK/tree"
expect_eq "URL password exit" "$RC" 0
expect_eq "URL password hits" "$(summary_field .cache.by_tier.redis)" 20
expect_no_password "stdout with URL" "$OUT"
expect_no_password "stderr with URL" "$ERR"
export ATHENA_REDIS_URL="redis://:$PASSWORD@127.0.0.1:$PORT/0"
run_athena flags
expect_no_password "flags with URL" "$OUT"
expect_match "URL is masked" "$(grep '^redis ' <<<"$OUT")" '\*\*\*\*\*\*\*\* +env ATHENA_REDIS_URL'
unset ATHENA_REDIS_URL

# A wrong password: one warning without the password, and the run goes on locally.
WRONG="wrong-$PASSWORD"
ATHENA_CACHE_DIR=$WORK/cache-c run_athena scan --json \
    --redis "redis://:$WRONG@127.0.0.1:$PORT/0" "$WORK/tree"
expect_eq "wrong password exit" "$RC" 0
expect_eq "wrong password warnings" "$(grep -c 'athena: warning' <<<"$ERR")" 1
expect_match "wrong password reason" "$ERR" 'authentication failed'
expect_match "wrong password names the server" "$ERR" "redis://127.0.0.1:$PORT/0"
expect_eq "wrong password still scans" "$(summary_field .files)" 20
checks=$((checks + 1))
if grep -qF -- "$WRONG" <<<"$ERR$OUT"; then
    fail "wrong password: shows the password that was tried"
fi

# No password at all.
ATHENA_CACHE_DIR=$WORK/cache-d run_athena scan --json --redis "redis://127.0.0.1:$PORT/0" \
    "$WORK/tree"
expect_eq "no password exit" "$RC" 0
expect_match "no password reason" "$ERR" 'requires a password'

# Nothing on disk carries the password either.
for folder in "$WORK"/cache-*; do
    checks=$((checks + 1))
    if grep -rqaF -- "$PASSWORD" "$folder"; then
        fail "$folder: a cache file contains the Redis password"
    fi
done

finish
