#!/usr/bin/env bash
# The walk: symlinks skipped unless followed, loops detected, excludes and size limits.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree/a/deep" "$WORK/outside"
printf 'one\n' >"$WORK/tree/a/one.txt"
printf 'two\n' >"$WORK/tree/a/deep/two.log"
printf 'outside\n' >"$WORK/outside/three.txt"
head -c 3000000 /dev/zero >"$WORK/tree/big.bin"
ln -s "$WORK/outside" "$WORK/tree/link-to-outside"
ln -s "$WORK/tree" "$WORK/tree/a/loop"
ln -s "$WORK/nowhere" "$WORK/tree/dangling"
mkfifo "$WORK/tree/fifo"

paths() { jq -r 'select(.type=="file") | .path' <<<"$OUT" | sed "s|$WORK/||" | LC_ALL=C sort; }

run_athena scan --json "$WORK/tree"
expect_eq "default walk" "$(paths | tr '\n' ' ')" "tree/a/deep/two.log tree/a/one.txt tree/big.bin "
expect_eq "symlinks skipped" "$(summary_field .skipped.symlinks)" 3
expect_eq "fifo skipped" "$(summary_field .skipped.special)" 1

run_athena scan --json --follow-symlinks "$WORK/tree"
expect_eq "followed walk" "$(paths | tr '\n' ' ')" \
    "tree/a/deep/two.log tree/a/one.txt tree/big.bin tree/link-to-outside/three.txt "
expect_eq "followed walk exit" "$RC" 0
expect_eq "loop detected" "$(summary_field .skipped.symlink_loops)" 1

run_athena scan --json --exclude '*.log' --exclude "$WORK/tree/big*" "$WORK/tree"
expect_eq "excluded walk" "$(paths | tr '\n' ' ')" "tree/a/one.txt "
expect_eq "excluded count" "$(summary_field .skipped.excluded)" 2

run_athena scan --json --exclude deep "$WORK/tree"
expect_eq "excluded folder" "$(paths | tr '\n' ' ')" "tree/a/one.txt tree/big.bin "

run_athena scan --json --max-file-size 1M "$WORK/tree"
expect_eq "size limit" "$(paths | tr '\n' ' ')" "tree/a/deep/two.log tree/a/one.txt "
expect_eq "too large count" "$(summary_field .skipped.too_large)" 1

run_athena scan --json -x "$WORK/tree"
expect_eq "one file system" "$(summary_field .files)" 3

# A symlink named on the command line is followed.
run_athena scan --json "$WORK/tree/link-to-outside"
expect_eq "root symlink followed" "$(paths)" "tree/link-to-outside/three.txt"

# --shard K/N splits files by digest: the shards are disjoint and together cover the tree.
mkdir -p "$WORK/many"
for i in $(seq 1 60); do
    printf 'shard me %d\n' "$i" >"$WORK/many/f$i"
done
shard_paths() { jq -r 'select(.type=="file") | .path' <<<"$OUT" | LC_ALL=C sort; }
run_athena scan --json --shard 1/3 "$WORK/many"
first=$(shard_paths)
run_athena scan --json --shard 2/3 "$WORK/many"
second=$(shard_paths)
run_athena scan --json --shard 3/3 "$WORK/many"
third=$(shard_paths)
expect_eq "shards cover the tree" "$(printf '%s\n%s\n%s\n' "$first" "$second" "$third" |
    grep -c .)" 60
expect_eq "shards are disjoint" "$(printf '%s\n%s\n%s\n' "$first" "$second" "$third" |
    grep . | sort | uniq -d | grep -c . || true)" 0
run_athena scan --shard 4/3 "$WORK/many"
expect_eq "bad shard exit status" "$RC" 2

finish
