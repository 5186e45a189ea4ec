#!/usr/bin/env bash
# Measure athena against the tools a user would otherwise reach for, and print a table of
# times, ratios and targets. Builds nothing: set ATHENA to the binary (default build/athena).
# See bench/README.md for the measurements and docs/benchmarks.md for recorded figures.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

MEASUREMENTS=(warm-hash big-hash cold-hash cold-scan warm-scan rss)
RSS_LIMIT_MB=64
# Peak RSS counts as flat when the full tree needs at most this factor of a tenth of it.
RSS_GROWTH_LIMIT=1.25

usage() {
    cat <<EOF
Usage: bench/run.sh [OPTIONS]

Generates the corpora under the output folder unless they are present, runs every
measurement and prints a table. Needs python3; uses hyperfine when installed, drops the
page cache for cold runs when /proc/sys/vm/drop_caches is writable, and records peak RSS
with /usr/bin/time (Debian package 'time').

Options:
  --quick              smoke-sized run: 10000 small files, 2000 mixed files, 1 big file,
                       1 s per openssl block size
  --files N            small-file corpus size (default: 100000)
  --mixed-files N      mixed-size corpus size (default: 10000)
  --big-files N        number of big files (default: 3)
  --big-size SIZE      size of each big file, e.g. 8M, 512M (default: 512M)
  --seed S             corpus seed (default: 1)
  --runs N             timed runs per command; the median is reported (default: 3)
  --budget SECONDS     run a command once when RUNS runs would take longer (default: 150)
  --timeout SECONDS    stop an athena run that takes longer (default: 1200)
  --openssl-seconds N  seconds per block size for 'openssl speed' (default: 3)
  --only LIST          comma-separated subset of: ${MEASUREMENTS[*]}
  --out DIR            output folder for corpora, caches and results (default: bench/out)
  --no-hyperfine       time runs with date +%s%N even when hyperfine is installed
  -h, --help           print this help

Environment: ATHENA is the athena binary (default: build/athena in the repository).
Exit status: 0 when every measurement ran (whether or not it met its target), 1 otherwise.
EOF
}

QUICK=0
SMALL_FILES="" MIXED_FILES="" BIG_FILES="" BIG_SIZE="512M" SEED=1 RUNS=3 BUDGET=150
TIMEOUT=1200 OPENSSL_SECONDS="" ONLY=all OUT=$BENCH_DIR/out USE_HYPERFINE=1

while (($# > 0)); do
    case $1 in
    --quick) QUICK=1 ;;
    --files) SMALL_FILES=$2 && shift ;;
    --mixed-files) MIXED_FILES=$2 && shift ;;
    --big-files) BIG_FILES=$2 && shift ;;
    --big-size) BIG_SIZE=$2 && shift ;;
    --seed) SEED=$2 && shift ;;
    --runs) RUNS=$2 && shift ;;
    --budget) BUDGET=$2 && shift ;;
    --timeout) TIMEOUT=$2 && shift ;;
    --openssl-seconds) OPENSSL_SECONDS=$2 && shift ;;
    --only) ONLY=$2 && shift ;;
    --out) OUT=$2 && shift ;;
    --no-hyperfine) USE_HYPERFINE=0 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && die "unknown option: $1" ;;
    esac
    shift
done

if ((QUICK)); then
    : "${SMALL_FILES:=10000}" "${MIXED_FILES:=2000}" "${BIG_FILES:=1}" "${OPENSSL_SECONDS:=1}"
else
    : "${SMALL_FILES:=100000}" "${MIXED_FILES:=10000}" "${BIG_FILES:=3}" "${OPENSSL_SECONDS:=3}"
fi
for value in "$SMALL_FILES" "$MIXED_FILES" "$BIG_FILES" "$SEED" "$RUNS" "$BUDGET" \
    "$TIMEOUT" "$OPENSSL_SECONDS"; do
    [[ $value =~ ^[0-9]+$ ]] || die "invalid number: '$value' (options take whole numbers)"
done
((SMALL_FILES >= 10)) || die "--files must be at least 10, got $SMALL_FILES"
((RUNS >= 1)) || die "--runs must be at least 1, got $RUNS"
BIG_BYTES=$(numfmt --from=iec "${BIG_SIZE%B}") || die "invalid --big-size: '$BIG_SIZE'"
TENTH_FILES=$((SMALL_FILES / 10))
for name in ${ONLY//,/ }; do
    [[ $name == all || " ${MEASUREMENTS[*]} " == *" $name "* ]] ||
        die "unknown measurement in --only: '$name' (choose from ${MEASUREMENTS[*]})"
done

selected() {
    [[ $ONLY == all || ",$ONLY," == *",$1,"* ]]
}

q() {
    printf '%q' "$1"
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ATHENA_SOURCE=${ATHENA:-$REPO_DIR/build/athena}
[[ -x $ATHENA_SOURCE ]] || die "athena binary not found at '$ATHENA_SOURCE' (build it or set ATHENA)"

RESULTS=$OUT/results/$(date +%Y%m%d-%H%M%S)
CACHE=$OUT/cache
CORPUS=$OUT/corpus
mkdir -p "$RESULTS" "$CORPUS"
rm -rf "$CACHE"
mkdir -p "$CACHE"
: >"$RESULTS/table.tsv"

# A copy keeps the binary fixed for the whole run even if the build folder is rebuilt.
ATHENA_BIN=$RESULTS/athena
cp "$ATHENA_SOURCE" "$ATHENA_BIN"
trap 'rm -f "$ATHENA_BIN"' EXIT
NPROC=$(nproc)

SMALL=$CORPUS/small-$SMALL_FILES-s$SEED
TENTH=$CORPUS/small-$TENTH_FILES-s$SEED
MIXED=$CORPUS/mixed-$MIXED_FILES-s$SEED
BIG=$CORPUS/big-${BIG_FILES}x$BIG_BYTES-s$SEED

DROP_PREPARE="sync; echo 3 > /proc/sys/vm/drop_caches"
DROP_BLOCKER=$(drop_caches_blocker)

record_machine() {
    local disk
    disk=$(df --output=source "$OUT" | tail -n 1)
    {
        echo "date: $(date -Is)"
        echo "athena: $ATHENA_SOURCE ($("$ATHENA_BIN" --version 2>&1 | head -n 1))"
        echo "athena sha256: $(sha256sum "$ATHENA_BIN" | cut -d' ' -f1)"
        echo "athena modified: $(date -Is -r "$ATHENA_SOURCE")"
        echo "repository HEAD: $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null ||
            echo unknown) (the binary may be older)"
        echo "nproc: $NPROC"
        echo "cpu: $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
        echo "sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
        echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
        echo "disk: $disk, $(df -h --output=fstype,size "$OUT" | tail -n 1 | xargs)," \
            "rotational=$(lsblk -ndo ROTA "$disk" 2>/dev/null | xargs || echo unknown)"
        echo "kernel: $(uname -r)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "hyperfine: $(hyperfine --version 2>/dev/null || echo 'not installed')," \
            "used: $( ((USE_HYPERFINE)) && command -v hyperfine >/dev/null && echo yes || echo no)"
        echo "openssl: $(openssl version)"
        echo "sha256sum: $(sha256sum --version | head -n 1)"
        echo "drop caches: ${DROP_BLOCKER:-yes}"
    } >"$RESULTS/machine.txt"
}

# Print the command prefix that runs athena under a timeout and records its peak RSS.
athena_prefix() {
    local name=$1
    printf 'timeout %s %s%q' "$TIMEOUT" "$(rss_prefix "$RESULTS/$name.rss")" "$ATHENA_BIN"
}

sha256sum_command() {
    printf 'find %q -type f -print0 | xargs -0 -n256 -P%s sha256sum >/dev/null' "$1" "$NPROC"
}

# Print the note for a measurement row: the run counts and athena's peak RSS.
# Arguments: NAME [BASELINE_NAME].
run_note() {
    local name=$1 baseline=${2:-}
    local note
    note="runs $(cat "$RESULTS/$name.runs")"
    if [[ -n $baseline ]]; then
        note+="/$(cat "$RESULTS/$baseline.runs")"
    fi
    local rss
    rss=$(peak_rss_mb "$RESULTS/$name.rss")
    if [[ -n $rss ]]; then
        note+="; RSS $rss MB"
    fi
    echo "$note"
}

measure_warm_hash() {
    local label="warm hash, $SMALL_FILES small files"
    log "warm hash: untimed runs to fill the page cache and compare digests"
    "$ATHENA_BIN" hash --disable stat-cache --cache-dir "$CACHE/hash" "$SMALL" \
        >"$RESULTS/warm-hash.sha256" 2>"$RESULTS/warm-hash.report" || return 1
    find "$SMALL" -type f -print0 | xargs -0 -n256 -P"$NPROC" sha256sum \
        >"$RESULTS/warm-hash-sha256sum.sha256" || return 1
    local check="digests match sha256sum"
    if ! cmp -s <(sort "$RESULTS/warm-hash.sha256") \
        <(sort "$RESULTS/warm-hash-sha256sum.sha256"); then
        check="DIGESTS DIFFER from sha256sum"
    fi

    local athena baseline
    athena=$(measure warm-hash "" "$(athena_prefix warm-hash) hash --disable stat-cache \
--cache-dir $(q "$CACHE/hash") $(q "$SMALL") >/dev/null 2>$(q "$RESULTS/warm-hash.report")") ||
        return 1
    baseline=$(measure warm-hash-sha256sum "" "$(sha256sum_command "$SMALL")") || return 1

    local ratio
    ratio=$(python3 -c "print($baseline / $athena)")
    add_row "$label" "$(format_number "$athena" .3f) s" "$(format_number "$baseline" .3f) s" \
        "$(format_number "$ratio" .2f)x faster" ">= 3.5x" "$(verdict "$ratio" '>=' 3.5)" \
        "$(run_note warm-hash warm-hash-sha256sum); $check"
}

# Print the SHA-256 rate of 'openssl speed' at its largest block size, in bytes per second.
openssl_rate() {
    openssl speed -multi "$NPROC" -seconds "$OPENSSL_SECONDS" -evp sha256 \
        >"$RESULTS/openssl-speed.txt" 2>&1 || return 1
    python3 - "$RESULTS/openssl-speed.txt" <<'EOF'
import sys

# 'openssl speed' prints the block sizes in a "type 16 bytes ..." header. With -multi it
# prints them only in a "Got: +H:16:64:..." line. The combined rates follow in a line
# that starts with the algorithm name.
sizes = None
rate = None
for line in open(sys.argv[1]):
    fields = line.split()
    if "+H:" in line:
        sizes = [int(value) for value in line.split("+H:")[1].split()[0].split(":")]
    elif fields and fields[0] == "type":
        sizes = [int(value) for value in fields[1:] if value.isdigit()]
    elif fields and fields[0].lower() == "sha256" and sizes:
        values = fields[1:]
        largest = sizes.index(max(sizes))
        rate = float(values[largest].rstrip("k")) * 1000
if rate is None:
    sys.exit("no sha256 figure found in the output of openssl speed")
print(f"{rate:.0f}")
EOF
}

measure_big_hash() {
    local label
    label="big files, ${BIG_FILES} x $(numfmt --to=iec "$BIG_BYTES")"
    log "big files: untimed run to fill the page cache"
    "$ATHENA_BIN" hash --disable stat-cache --cache-dir "$CACHE/hash" "$BIG" \
        >/dev/null 2>"$RESULTS/big-hash.report" || return 1
    local athena
    athena=$(measure big-hash "" "$(athena_prefix big-hash) hash --disable stat-cache \
--cache-dir $(q "$CACHE/hash") $(q "$BIG") >/dev/null 2>$(q "$RESULTS/big-hash.report")") ||
        return 1
    log "openssl speed -multi $NPROC -seconds $OPENSSL_SECONDS -evp sha256"
    local openssl
    openssl=$(openssl_rate) || return 1
    local bytes athena_rate ratio
    bytes=$(manifest_field "$BIG/.corpus.json" bytes)
    athena_rate=$(python3 -c "print($bytes / $athena)")
    ratio=$(python3 -c "print($athena_rate / $openssl)")
    add_row "$label" \
        "$(format_number "$athena" .3f) s, $(format_number "$athena_rate / 1e6" .0f) MB/s" \
        "openssl speed $(format_number "$openssl / 1e6" .0f) MB/s" \
        "$(format_number "$ratio" .2f) of openssl" ">= 0.72" "$(verdict "$ratio" '>=' 0.72)" \
        "$(run_note big-hash)"
}

# Time the cold sha256sum pipeline once per run of the script; later measurements reuse it.
cold_sha256sum_time() {
    if [[ -f $RESULTS/cold-sha256sum.median ]]; then
        cat "$RESULTS/cold-sha256sum.median"
        return 0
    fi
    measure cold-sha256sum "$DROP_PREPARE" "$(sha256sum_command "$SMALL")" \
        >"$RESULTS/cold-sha256sum.median" || return 1
    cat "$RESULTS/cold-sha256sum.median"
}

measure_cold_hash() {
    local label="cold hash, $SMALL_FILES small files"
    if [[ -n $DROP_BLOCKER ]]; then
        add_row "$label" - - - ">= 2.5x" skipped "$DROP_BLOCKER"
        return 0
    fi
    local athena baseline ratio
    athena=$(measure cold-hash "$DROP_PREPARE" "$(athena_prefix cold-hash) hash \
--disable stat-cache --cache-dir $(q "$CACHE/hash") $(q "$SMALL") >/dev/null \
2>$(q "$RESULTS/cold-hash.report")") || return 1
    baseline=$(cold_sha256sum_time) || return 1
    ratio=$(python3 -c "print($baseline / $athena)")
    add_row "$label" "$(format_number "$athena" .3f) s" "$(format_number "$baseline" .3f) s" \
        "$(format_number "$ratio" .2f)x faster" ">= 2.5x" "$(verdict "$ratio" '>=' 2.5)" \
        "$(run_note cold-hash cold-sha256sum)"
}

measure_cold_scan() {
    local label="cold scan, $SMALL_FILES small files"
    if [[ -n $DROP_BLOCKER ]]; then
        add_row "$label" - - - ">= 1.0x" skipped "$DROP_BLOCKER"
        return 0
    fi
    wait_for_settled_corpus "$SMALL"
    local athena baseline ratio
    athena=$(measure cold-scan "rm -rf $(q "$CACHE/scan"); $DROP_PREPARE" \
        "$(athena_prefix cold-scan) scan --json --cache-dir $(q "$CACHE/scan") $(q "$SMALL") \
>/dev/null 2>$(q "$RESULTS/cold-scan.report")") || return 1
    baseline=$(cold_sha256sum_time) || return 1
    ratio=$(python3 -c "print($baseline / $athena)")
    add_row "$label" "$(format_number "$athena" .3f) s" "$(format_number "$baseline" .3f) s" \
        "$(format_number "$ratio" .2f)x faster" ">= 1.0x" "$(verdict "$ratio" '>=' 1.0)" \
        "$(run_note cold-scan cold-sha256sum); vs cold sha256sum"
}

# Print a short description of a scan summary: analyses, hit rate and stat-cache hits.
describe_summary() {
    python3 - "$1" <<'EOF'
import json
import sys

summary = json.loads(open(sys.argv[1]).read().splitlines()[-1])
analyses = summary["analyses"]
hit_rate = summary["cache"]["hit_rate"]
print(f"{analyses} analysed, hit rate {hit_rate:.2f}, "
      f"{summary['stat_cache_hits']}/{summary['files']} from the stat cache")
EOF
}

measure_warm_scan() {
    local label="warm scan, $SMALL_FILES files, unchanged"
    wait_for_settled_corpus "$SMALL"
    if [[ ! -f $CACHE/scan/cache.db ]]; then
        log "warm scan: untimed run to fill the cache"
        "$ATHENA_BIN" scan --json -q --cache-dir "$CACHE/scan" "$SMALL" >/dev/null || return 1
    fi
    log "warm scan: untimed runs to fill the page cache and check the cache hit rate"
    "$ATHENA_BIN" scan --json --cache-dir "$CACHE/scan" "$SMALL" \
        >"$RESULTS/warm-scan.ndjson" 2>"$RESULTS/warm-scan.report" || return 1
    tail -n 1 "$RESULTS/warm-scan.ndjson" >"$RESULTS/warm-scan.summary.json"
    find "$SMALL" -type f -printf '%s\n' >/dev/null
    local athena baseline ratio
    athena=$(measure warm-scan "" "$(athena_prefix warm-scan) scan --json \
--cache-dir $(q "$CACHE/scan") $(q "$SMALL") >/dev/null 2>$(q "$RESULTS/warm-scan.report")") ||
        return 1
    baseline=$(measure warm-scan-find "" "find $(q "$SMALL") -type f -printf '%s\n' \
>/dev/null") || return 1
    ratio=$(python3 -c "print($athena / $baseline)")
    add_row "$label" "$(format_number "$athena" .3f) s" "$(format_number "$baseline" .3f) s" \
        "$(format_number "$ratio" .2f)x find's time" "<= 2.0x" \
        "$(verdict "$ratio" '<=' 2.0)" \
        "$(run_note warm-scan warm-scan-find); $(describe_summary "$RESULTS/warm-scan.ndjson")"
}

# Scan a corpus with an empty cache and print athena's peak RSS in MB.
scan_rss() {
    local name=$1 corpus=$2
    rm -f "$RESULTS/$name.rss"
    log "peak RSS: scanning $corpus with an empty cache"
    timeout "$TIMEOUT" /usr/bin/time -o "$RESULTS/$name.rss" -f %M "$ATHENA_BIN" scan --json \
        --cache-dir "$CACHE/$name" "$corpus" >/dev/null 2>"$RESULTS/$name.report" || return 1
    peak_rss_mb "$RESULTS/$name.rss"
}

measure_rss() {
    if [[ ! -x /usr/bin/time ]]; then
        add_row "peak RSS" - - - "<= $RSS_LIMIT_MB MB" skipped \
            "/usr/bin/time is missing (install the Debian package 'time')"
        return 0
    fi
    local full tenth mixed
    # The cold scan already recorded the peak RSS of scanning the whole small corpus.
    full=$(peak_rss_mb "$RESULTS/cold-scan.rss")
    if [[ -z $full ]]; then
        full=$(scan_rss rss-small "$SMALL") || return 1
    fi
    tenth=$(scan_rss rss-tenth "$TENTH") || return 1
    mixed=$(scan_rss rss-mixed "$MIXED") || return 1

    local limit="<= $RSS_LIMIT_MB MB"
    add_row "peak RSS, scan $SMALL_FILES small files" "$full MB" - - "$limit" \
        "$(verdict "$full" '<=' "$RSS_LIMIT_MB")" "empty cache"
    add_row "peak RSS, scan $TENTH_FILES small files" "$tenth MB" - - "$limit" \
        "$(verdict "$tenth" '<=' "$RSS_LIMIT_MB")" "empty cache"
    add_row "peak RSS, scan $MIXED_FILES mixed files" "$mixed MB" - - "$limit" \
        "$(verdict "$mixed" '<=' "$RSS_LIMIT_MB")" "empty cache"
    local warm
    warm=$(peak_rss_mb "$RESULTS/warm-scan.rss")
    if [[ -n $warm ]]; then
        add_row "peak RSS, warm scan $SMALL_FILES files" "$warm MB" - - "$limit" \
            "$(verdict "$warm" '<=' "$RSS_LIMIT_MB")" "cache filled"
    fi

    local growth
    growth=$(python3 -c "print($full / $tenth)")
    add_row "peak RSS growth, $TENTH_FILES -> $SMALL_FILES files" "$full MB" "$tenth MB" \
        "$(format_number "$growth" .2f)x" "<= ${RSS_GROWTH_LIMIT}x" \
        "$(verdict "$growth" '<=' "$RSS_GROWTH_LIMIT")" "flat in tree size"
}

# Append the load average seen when a measurement started to the notes of the rows it
# added, because other processes on the machine skew its times.
append_load_to_notes() {
    local rows_before=$1 load=$2
    python3 - "$RESULTS/table.tsv" "$rows_before" "$load" <<'EOF'
import sys

path, rows_before, load = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().splitlines()
for index in range(rows_before, len(lines)):
    lines[index] += f"; load {load}"
open(path, "w").write("".join(line + "\n" for line in lines))
EOF
}

main() {
    record_machine
    log "results go to $RESULTS"
    if [[ -n $DROP_BLOCKER ]]; then
        log "cold measurements are skipped: $DROP_BLOCKER"
    fi
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if python3 -c "import sys; sys.exit(0 if $load > $NPROC / 2 else 1)"; then
        log "warning: load average $load on $NPROC cores; other work skews the times"
    fi

    if selected warm-hash || selected cold-hash || selected cold-scan || selected warm-scan ||
        selected rss; then
        ensure_corpus small "$SMALL_FILES" "$BIG_BYTES" "$SEED" "$SMALL"
    fi
    if selected rss; then
        ensure_corpus small "$TENTH_FILES" "$BIG_BYTES" "$SEED" "$TENTH"
        ensure_corpus mixed "$MIXED_FILES" "$BIG_BYTES" "$SEED" "$MIXED"
    fi
    if selected big-hash; then
        ensure_corpus big "$BIG_FILES" "$BIG_BYTES" "$SEED" "$BIG"
    fi

    local failed=0 name rows_before load_before
    for name in "${MEASUREMENTS[@]}"; do
        selected "$name" || continue
        rows_before=$(wc -l <"$RESULTS/table.tsv")
        load_before=$(cut -d' ' -f1 /proc/loadavg)
        if ! "measure_${name//-/_}"; then
            log "$name failed; see $RESULTS/hyperfine.log and $RESULTS/*.report"
            add_row "$name" - - - - error "failed; see $RESULTS"
            failed=1
        fi
        append_load_to_notes "$rows_before" "$load_before"
    done

    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
    print_table | tee "$RESULTS/table.txt"
    echo
    echo "results, athena reports (*.report) and machine details: $RESULTS"
    return "$failed"
}

main
