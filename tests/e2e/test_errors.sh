#!/usr/bin/env bash
# Bad input gets a clear message and the documented exit status; nothing is lost.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree"
printf 'kept\n' >"$WORK/tree/kept.txt"

# A path that does not exist is an error record, and the rest of the run goes on.
run_athena scan --json "$WORK/tree" "$WORK/vanished"
expect_eq "missing path exit status" "$RC" 2
expect_eq "missing path error kind" \
    "$(jq -r 'select(.type=="file" and .error != null) | .error.kind' <<<"$OUT")" not_found
expect_eq "other file still scanned" \
    "$(jq -r 'select(.type=="file" and .verdict != null) | .path' <<<"$OUT")" \
    "$WORK/tree/kept.txt"
expect_eq "summary errors" "$(summary_field .errors)" 1

# Usage errors: unknown option, bad size, unknown flag name, bad level.
run_athena scan --no-such-option "$WORK/tree"
expect_eq "unknown option exit status" "$RC" 2
expect_match "unknown option message" "$ERR" "^athena: error: .*no-such-option"

run_athena scan --max-file-size 10X "$WORK/tree"
expect_eq "bad size exit status" "$RC" 2
expect_match "bad size message" "$ERR" "10X"

run_athena scan --disable no-such-flag "$WORK/tree"
expect_eq "unknown flag exit status" "$RC" 2
expect_match "unknown flag lists choices" "$ERR" "memory-cache"

run_athena scan --fail-on severe "$WORK/tree"
expect_eq "bad level exit status" "$RC" 2
expect_match "bad level lists choices" "$ERR" "malicious"

FEATURE_ENABLEMEMORYCACHE=perhaps run_athena scan "$WORK/tree"
expect_eq "bad env value exit status" "$RC" 2
expect_match "bad env value names the variable" "$ERR" "FEATURE_ENABLEMEMORYCACHE"

# A cache file that is not a SQLite database is reported and left as it was.
mkdir -p "$WORK/badcache"
head -c 4096 /dev/urandom >"$WORK/badcache/cache.db"
before=$(sha256sum <"$WORK/badcache/cache.db")
run_athena scan --cache-dir "$WORK/badcache" "$WORK/tree"
expect_eq "corrupt cache exit status" "$RC" 2
expect_match "corrupt cache message" "$ERR" "not a SQLite database"
expect_eq "corrupt cache untouched" "$(sha256sum <"$WORK/badcache/cache.db")" "$before"

# A cache folder that cannot be created.
run_athena scan --cache-dir "$WORK/tree/kept.txt/cache" "$WORK/tree"
expect_eq "unusable cache folder exit status" "$RC" 2
expect_match "unusable cache folder message" "$ERR" "cache folder"

# A file that cannot be read (only meaningful when not root: root reads anything).
if [[ $(id -u) -ne 0 ]]; then
    printf 'secret\n' >"$WORK/tree/locked.txt"
    chmod 000 "$WORK/tree/locked.txt"
    run_athena scan --json "$WORK/tree"
    expect_eq "unreadable file exit status" "$RC" 2
    expect_eq "unreadable file error kind" \
        "$(jq -r 'select(.type=="file" and .error != null) | .error.kind' <<<"$OUT")" io
    chmod 600 "$WORK/tree/locked.txt"
fi

finish
