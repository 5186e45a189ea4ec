#!/usr/bin/env bash
# Names with newlines, tabs, leading dashes and invalid UTF-8 give valid NDJSON and exact
# hash lines.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree"
cd "$WORK/tree"
printf 'a\n' >$'new\nline'
printf 'b\n' >$'tab\there'
printf 'c\n' >'-leading-dash'
printf 'd\n' >$'bad\xff\xfeutf8'
printf 'e\n' >'back\slash'
printf 'f\n' >'plain name'
age_files .
cd "$WORK"

run_athena scan --json "$WORK/tree"
expect_eq "exit status" "$RC" 0
expect_eq "every line is JSON" "$(jq -c . <<<"$OUT" | wc -l)" 7
expect_eq "file records" "$(summary_field .files)" 6
# The invalid UTF-8 name is lossy in path and exact in path_base64.
exact=$(jq -r 'select(.type=="file" and .path_base64 != null) | .path_base64' <<<"$OUT" |
    base64 -d | od -An -tx1 | tr -d ' \n')
expect_eq "path_base64 round trip" "$exact" \
    "$(printf '%s' "$WORK/tree/"$'bad\xff\xfeutf8' | od -An -tx1 | tr -d ' \n')"
expect_eq "only the invalid name has path_base64" \
    "$(jq -c 'select(.type=="file" and .path_base64 != null)' <<<"$OUT" | wc -l)" 1

# athena hash prints lines sha256sum -c accepts, escaped names included.
cd "$WORK/tree"
run_athena hash .
expect_eq "hash exit status" "$RC" 0
printf '%s\n' "$OUT" >"$WORK/sums"
if sha256sum --quiet -c "$WORK/sums" >/dev/null 2>&1; then
    checks=$((checks + 1))
else
    fail "sha256sum -c rejected athena hash output"
fi
expect_eq "hash lines" "$(grep -c '' "$WORK/sums")" 6
# A leading dash is a file name here, not an option.
run_athena scan --json -- -leading-dash
expect_eq "leading dash as path" "$(summary_field .files)" 1
cd "$WORK"

finish
