#!/usr/bin/env bash
# The EICAR test file is rated malicious and fails the run; --fail-on moves the threshold.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/tree"
# Assembled from parts so that this script itself is not an EICAR file.
part1='X5O!P%@AP[4\PZX54(P^)7CC)7}$'
part2='EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf '%s%s' "$part1" "$part2" >"$WORK/tree/eicar.com"
printf 'just a note\n' >"$WORK/tree/note.txt"

run_athena scan --json "$WORK/tree"
expect_eq "exit status with a malicious file" "$RC" 1
expect_eq "eicar level" \
    "$(jq -r 'select(.type=="file" and (.path|endswith("eicar.com"))) | .verdict.threat_level' \
        <<<"$OUT")" malicious
expect_match "eicar signature" \
    "$(jq -c 'select(.type=="file" and (.path|endswith("eicar.com"))) | .verdict.signatures' \
        <<<"$OUT")" "eicar"
expect_eq "note level" \
    "$(jq -r 'select(.type=="file" and (.path|endswith("note.txt"))) | .verdict.threat_level' \
        <<<"$OUT")" benign
expect_eq "summary exit code" "$(summary_field .exit_code)" 1
expect_eq "summary malicious count" "$(summary_field .by_level.malicious)" 1

run_athena scan --fail-on critical "$WORK/tree"
expect_eq "exit status with --fail-on critical" "$RC" 0
expect_match "text line for eicar" "$OUT" "^malicious +$WORK/tree/eicar.com"

ATHENA_FAIL_ON=suspicious run_athena scan "$WORK/tree/note.txt"
expect_eq "benign file under --fail-on suspicious" "$RC" 0

finish
