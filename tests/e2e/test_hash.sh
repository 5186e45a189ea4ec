#!/usr/bin/env bash
# athena hash agrees with sha256sum and skips unchanged files through the stat cache.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree/sub"
for i in $(seq 1 30); do
    head -c $((i * 977)) /dev/urandom >"$WORK/tree/sub/r$i"
done
: >"$WORK/tree/empty"
age_files "$WORK/tree"
cd "$WORK"

run_athena hash --sort path tree
expect_eq "exit status" "$RC" 0
expect_eq "same as sha256sum" "$OUT" "$(find tree -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum)"
expect_match "report counts hashed files" "$ERR" "hashed +31 files"

run_athena hash --sort path tree
expect_eq "warm output unchanged" "$OUT" "$(find tree -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum)"
expect_match "warm run reads nothing" "$ERR" "hashed +0 files, 0 B; 31 answered by the stat cache"

run_athena hash --disable stat-cache tree
expect_match "stat cache off reads all" "$ERR" "hashed +31 files"

run_athena hash "$WORK/missing"
expect_eq "missing path exit status" "$RC" 2
expect_match "missing path message" "$ERR" "missing"

finish
