# shellcheck shell=bash
# Shell functions for bench/run.sh: logging, page-cache control, corpora, timing, the table.
# Source this file; it expects BENCH_DIR, RESULTS, RUNS, BUDGET and USE_HYPERFINE to be set.

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# Print the reason the page cache cannot be dropped, or nothing when it can.
drop_caches_blocker() {
    if [[ ! -e /proc/sys/vm/drop_caches ]]; then
        echo "/proc/sys/vm/drop_caches does not exist"
    elif [[ ! -w /proc/sys/vm/drop_caches ]]; then
        echo "/proc/sys/vm/drop_caches is not writable (run as root outside a read-only /proc)"
    elif ! (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
        echo "writing 3 to /proc/sys/vm/drop_caches failed"
    fi
}

# Print the value of a numeric field of a corpus manifest, or nothing when it is missing.
manifest_field() {
    local manifest=$1 field=$2
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$manifest" "$field" 2>/dev/null || true
}

# Generate a corpus unless DIR already contains one made with the same parameters.
# Arguments: KIND FILES SIZE SEED DIR (SIZE is used by the big kind only).
ensure_corpus() {
    local kind=$1 files=$2 size=$3 seed=$4 dir=$5
    local manifest=$dir/.corpus.json
    if [[ -f $manifest ]] &&
        [[ $(manifest_field "$manifest" files) == "$files" ]] &&
        [[ $(manifest_field "$manifest" seed) == "$seed" ]] &&
        [[ $kind != big || $(manifest_field "$manifest" size) == "$size" ]]; then
        log "corpus $dir is present"
        return 0
    fi
    log "generating corpus $dir"
    python3 "$BENCH_DIR/make_corpus.py" --kind "$kind" --files "$files" --size "$size" \
        --seed "$seed" --out "$dir"
}

# Sleep until the newest file of a corpus is at least two seconds old. athena hashes a file
# again when it changed within a second of its stat-cache entry, so a scan that follows the
# generator too closely would not count as unchanged on the next run.
wait_for_settled_corpus() {
    local dir=$1
    local written now
    written=$(stat -c %Y "$dir/.corpus.json")
    now=$(date +%s)
    if ((now - written < 2)); then
        sleep $((2 - (now - written)))
    fi
}

# Write the run times in seconds of a hyperfine JSON export, one a line.
times_from_json() {
    python3 -c '
import json, sys
for value in json.load(open(sys.argv[1]))["results"][0]["times"]:
    print(f"{value:.6f}")
' "$1"
}

# Print the median of the numbers in a file, one a line.
median_of_file() {
    python3 -c '
import statistics, sys
values = [float(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{statistics.median(values):.6f}")
' "$1"
}

# Run COMMAND RUN_COUNT times with PREPARE before each run and append each time in seconds
# to TIMES_FILE. Uses hyperfine when present and USE_HYPERFINE is 1, else a loop around
# date +%s%N.
# Arguments: NAME RUN_COUNT PREPARE COMMAND TIMES_FILE. PREPARE may be empty.
run_timed() {
    local name=$1 run_count=$2 prepare=$3 command=$4 times_file=$5
    if ((USE_HYPERFINE)) && command -v hyperfine >/dev/null; then
        local json
        json=$RESULTS/$name.$(date +%s%N).json
        local -a options=(--runs "$run_count" --export-json "$json" --style basic
            --command-name "$name")
        if [[ -n $prepare ]]; then
            options+=(--prepare "$prepare")
        fi
        if ! hyperfine "${options[@]}" "$command" >>"$RESULTS/hyperfine.log" 2>&1; then
            return 1
        fi
        times_from_json "$json" >>"$times_file"
        return 0
    fi
    local run started finished
    for ((run = 0; run < run_count; run++)); do
        if [[ -n $prepare ]]; then
            bash -c "$prepare" || return 1
        fi
        started=$(date +%s%N)
        bash -c "$command" >/dev/null || return 1
        finished=$(date +%s%N)
        python3 -c "print(f'{($finished - $started) / 1e9:.6f}')" >>"$times_file"
    done
}

# Time COMMAND and print the median in seconds. The first run decides how many follow: when
# RUNS runs would take longer than BUDGET seconds, the first run is the only one. Writes
# RESULTS/NAME.times (all times) and RESULTS/NAME.runs (the run count).
# Arguments: NAME PREPARE COMMAND.
measure() {
    local name=$1 prepare=$2 command=$3
    local times_file=$RESULTS/$name.times
    : >"$times_file"
    log "timing $name"
    printf '%s\n' "$command" >"$RESULTS/$name.command"
    run_timed "$name" 1 "$prepare" "$command" "$times_file" || return 1
    local first
    first=$(head -n 1 "$times_file")
    if python3 -c "import sys; sys.exit(0 if $first * ($RUNS - 1) <= $BUDGET else 1)"; then
        if ((RUNS > 1)); then
            run_timed "$name" $((RUNS - 1)) "$prepare" "$command" "$times_file" || return 1
        fi
    else
        log "$name took ${first} s, so it runs once to stay within the ${BUDGET} s budget"
    fi
    wc -l <"$times_file" | tr -d ' ' >"$RESULTS/$name.runs"
    median_of_file "$times_file"
}

# Print the largest peak RSS in MB recorded by /usr/bin/time -f %M in FILE, or nothing.
peak_rss_mb() {
    local file=$1
    [[ -s $file ]] || return 0
    python3 -c '
import sys
values = [int(line) for line in open(sys.argv[1]) if line.strip().isdigit()]
if values:
    print(f"{max(values) / 1024:.1f}")
' "$file"
}

# Print the command prefix that records the peak RSS of the command after it into FILE.
rss_prefix() {
    local file=$1
    if [[ -x /usr/bin/time ]]; then
        printf '/usr/bin/time -a -o %q -f %%M ' "$file"
    fi
}

# Append a row to the results table. Arguments: MEASUREMENT ATHENA BASELINE RATIO TARGET
# RESULT NOTE. RESULT is pass, miss, skipped or error.
add_row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS/table.tsv"
}

# Print "pass" when VALUE COMPARISON LIMIT holds, else "miss". COMPARISON is >= or <=.
verdict() {
    local value=$1 comparison=$2 limit=$3
    python3 -c "import sys; print('pass' if $value $comparison $limit else 'miss')"
}

# Print a number formatted with FORMAT, e.g. format_number 1.23456 .2f.
format_number() {
    python3 -c "print(format($1, '$2'))"
}

# Print the table as aligned columns.
print_table() {
    python3 - "$RESULTS/table.tsv" <<'EOF'
import sys

header = ["measurement", "athena", "baseline", "ratio", "target", "result", "note"]
rows = [header] + [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
for index, row in enumerate(rows):
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if index == 0:
        print("  ".join("-" * width for width in widths))
EOF
}
