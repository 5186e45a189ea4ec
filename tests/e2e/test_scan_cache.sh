#!/usr/bin/env bash
# A first scan misses every file; a rerun answers all from cache; a changed file is
# re-analysed and only it.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree/sub"
for i in $(seq 1 40); do
    printf 'file number %d\n' "$i" >"$WORK/tree/f$i.txt"
done
head -c 20000 /dev/urandom >"$WORK/tree/sub/random.bin"
age_files "$WORK/tree"

run_athena scan --json "$WORK/tree"
expect_eq "first run exit" "$RC" 0
expect_eq "first run files" "$(summary_field .files)" 41
expect_eq "first run analyses" "$(summary_field .analyses)" 41
expect_eq "first run misses" "$(summary_field .cache.misses)" 41
expect_eq "first run hit rate" "$(summary_field .cache.hit_rate)" 0
expect_eq "file records" "$(jq -c 'select(.type=="file")' <<<"$OUT" | wc -l)" 41
expect_eq "records with a verdict" \
    "$(jq -c 'select(.type=="file" and .verdict.threat_level != null)' <<<"$OUT" | wc -l)" 41

run_athena scan --json "$WORK/tree"
expect_eq "second run exit" "$RC" 0
expect_eq "second run analyses" "$(summary_field .analyses)" 0
expect_eq "second run hit rate" "$(summary_field .cache.hit_rate)" 1
expect_eq "second run sqlite hits" "$(summary_field .cache.by_tier.sqlite)" 41
expect_eq "second run stat cache hits" "$(summary_field .stat_cache_hits)" 41
expect_eq "second run bytes hashed" "$(summary_field .bytes_hashed)" 0

printf 'file number 7, edited\n' >"$WORK/tree/f7.txt"
run_athena scan --json "$WORK/tree"
expect_eq "after edit analyses" "$(summary_field .analyses)" 1
expect_eq "after edit misses" "$(summary_field .cache.misses)" 1
expect_eq "edited file missed" \
    "$(jq -r 'select(.type=="file" and .cache=="miss") | .path' <<<"$OUT")" "$WORK/tree/f7.txt"

# An edit that keeps the size and puts the mtime back is still seen: the ctime moved.
old_mtime=$(stat -c %y "$WORK/tree/f8.txt")
run_athena scan --json "$WORK/tree"
printf 'file number 9\n' >"$WORK/tree/f8.txt"
touch -d "$old_mtime" "$WORK/tree/f8.txt"
run_athena scan --json "$WORK/tree"
expect_eq "same-size edit seen" \
    "$(jq -r "select(.type==\"file\" and .path==\"$WORK/tree/f8.txt\") | .sha256" <<<"$OUT")" \
    "$(sha256sum <"$WORK/tree/f8.txt" | cut -d' ' -f1)"

# Identical content under several paths is analysed once.
mkdir -p "$WORK/dups"
for i in $(seq 1 12); do
    printf 'same content\n' >"$WORK/dups/copy$i"
done
run_athena scan --json "$WORK/dups"
expect_eq "duplicates analysed once" "$(summary_field .analyses)" 1
expect_eq "duplicate records" "$(summary_field .files)" 12

# --sort path gives a stable order.
run_athena scan --json --sort path "$WORK/tree"
expect_eq "sorted output" "$(jq -r 'select(.type=="file") | .path' <<<"$OUT")" \
    "$(jq -r 'select(.type=="file") | .path' <<<"$OUT" | LC_ALL=C sort)"

finish
