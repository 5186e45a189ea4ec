#!/usr/bin/env bash
# Dispatch benchmark: 1,000 unique files against the fake provider answering after a fixed
# delay, with the bulkheads raised to the concurrency under test. Prints wall time over the
# ideal (ceil(files / concurrency) × delay), athena's CPU time per request, and peak memory;
# then the same with 1,000 requests in flight at once. Only reports; nothing here asserts a
# time. Every request goes to the fake provider on 127.0.0.1.
#
#   bench/dispatch.sh [--files N] [--delay-ms MS] [--concurrency N] [--wide N]
#   ATHENA=/path/to/athena bench/dispatch.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ATHENA=${ATHENA:-$ROOT/build/athena}
FILES=1000
DELAY_MS=200
CONCURRENCY=30
WIDE=1000

while [[ $# -gt 0 ]]; do
    case $1 in
    --files) FILES=$2; shift 2 ;;
    --delay-ms) DELAY_MS=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --wide) WIDE=$2; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "dispatch.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [[ ! -x $ATHENA ]]; then
    echo "dispatch.sh: no athena binary at $ATHENA; build it or set ATHENA" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/athena-dispatch.XXXXXX")
FAKE_PID=""
finish() {
    if [[ -n $FAKE_PID ]]; then
        kill "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap finish EXIT

# 1,000 sockets on each side need more descriptors than the usual soft limit of 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

python3 "$ROOT/tests/fake_provider/fake_provider.py" --port 0 --port-file "$WORK/port" \
    --max-lifetime 3600 2>"$WORK/fake.log" &
FAKE_PID=$!
for _ in $(seq 1 100); do
    [[ -s $WORK/port ]] && break
    sleep 0.05
done
FAKE_URL="http://127.0.0.1:$(tr -d '[:space:]' <"$WORK/port")"

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
export ANTHROPIC_API_KEY=sk-ant-bench-not-a-real-key ANTHROPIC_BASE_URL=$FAKE_URL
export XDG_CONFIG_HOME="$WORK/config" NO_COLOR=1

# make_tree DIR COUNT TAG: COUNT small text files whose contents no other tree shares.
make_tree() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
root, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(count):
    sub = os.path.join(root, f"d{i // 100}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}.txt"), "w") as out:
        out.write(f"benchmark {tag} file {i}: an ordinary note with nothing to report\n")
PY
}

# measure NAME ARGS...: runs athena with a fresh cache; writes NAME.json (wall ms, CPU ms,
# max RSS KiB) from the child's resource usage, and the NDJSON output to NAME.out.
measure() {
    local name=$1
    shift
    python3 - "$WORK/$name" "$ATHENA" "$@" <<'PY'
import json, resource, subprocess, sys, time
prefix, command = sys.argv[1], sys.argv[2:]
started = time.monotonic()
with open(prefix + ".out", "wb") as out, open(prefix + ".err", "wb") as err:
    status = subprocess.call(command, stdout=out, stderr=err)
wall_ms = (time.monotonic() - started) * 1000
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"status": status, "wall_ms": wall_ms,
           "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
           "rss_kib": usage.ru_maxrss}, open(prefix + ".json", "w"))
PY
}

field() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" \
        "$WORK/$1.json" "$2"
}

# analysis NAME EXPR: a value from the analysis part of a run's NDJSON summary.
analysis() {
    python3 -c "
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    if record.get('type') == 'summary':
        analysis = record['analysis']
        print(eval(sys.argv[2]))
" "$WORK/$1.out" "$2"
}

fake() {
    curl -sf -X POST "$FAKE_URL/_config" -d "$1" >/dev/null
}

stat() {
    curl -sf "$FAKE_URL/_stats" | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"
}

echo "athena dispatch benchmark: $FILES files, provider delay $DELAY_MS ms"
echo "machine: $(nproc) cores, $(uname -sr), $(python3 --version)"

# Baseline: the same kind of tree with the builtin analyser only, to tell the CPU time of
# walking, hashing and evidence extraction from that of dispatching.
make_tree "$WORK/base" "$FILES" base
measure base scan --json -q --cache-dir "$WORK/cache-base" "$WORK/base"

make_tree "$WORK/narrow" "$FILES" narrow
curl -sf -X POST "$FAKE_URL/_reset" >/dev/null
fake "{\"delay_ms\": $DELAY_MS}"
measure narrow scan --json -q --providers anthropic --max-concurrency "$CONCURRENCY" \
    --bulkhead-max-concurrent "$CONCURRENCY" --bulkhead-global-concurrency "$CONCURRENCY" \
    --cache-dir "$WORK/cache-narrow" "$WORK/narrow"
narrow_requests=$(stat "['requests_total']")
narrow_peak=$(stat "['peak_in_flight']")

make_tree "$WORK/wide" "$WIDE" wide
curl -sf -X POST "$FAKE_URL/_reset" >/dev/null
fake "{\"delay_ms\": $DELAY_MS}"
measure wide scan --json -q --providers anthropic --max-concurrency "$WIDE" \
    --bulkhead-max-concurrent "$WIDE" --bulkhead-global-concurrency "$WIDE" \
    --cache-dir "$WORK/cache-wide" "$WORK/wide"
wide_requests=$(stat "['requests_total']")
wide_peak=$(stat "['peak_in_flight']")

python3 - "$FILES" "$DELAY_MS" "$CONCURRENCY" "$WIDE" "$narrow_requests" "$narrow_peak" \
    "$wide_requests" "$wide_peak" "$(field base wall_ms)" "$(field base cpu_ms)" \
    "$(field base rss_kib)" "$(field narrow wall_ms)" "$(field narrow cpu_ms)" \
    "$(field narrow rss_kib)" "$(field wide wall_ms)" "$(field wide cpu_ms)" \
    "$(field wide rss_kib)" "$(analysis narrow "analysis['providers'][0]['latency_ms']['mean']")" \
    "$(analysis narrow "analysis['peak_in_flight']")" "$(analysis wide "analysis['peak_in_flight']")" \
    "$(analysis wide "analysis['providers'][0]['latency_ms']['mean']")" <<'PY'
import math, sys
(files, delay, conc, wide, n_req, n_peak, w_req, w_peak) = map(int, sys.argv[1:9])
(b_wall, b_cpu, b_rss, n_wall, n_cpu, n_rss, w_wall, w_cpu, w_rss) = map(float, sys.argv[9:18])
n_latency, n_own_peak, w_own_peak, w_latency = map(float, sys.argv[18:22])
ideal = math.ceil(files / conc) * delay
ideal_wide = math.ceil(wide / wide) * delay
print()
print(f"{'run':<34} {'wall ms':>9} {'ideal ms':>9} {'ratio':>6} {'CPU ms':>8} {'peak RSS':>10}")
print(f"{'builtin only (baseline)':<34} {b_wall:>9.0f} {'-':>9} {'-':>6} {b_cpu:>8.0f} "
      f"{b_rss / 1024:>8.1f} M")
print(f"{f'{files} files, concurrency {conc}':<34} {n_wall:>9.0f} {ideal:>9} "
      f"{n_wall / ideal:>6.3f} {n_cpu:>8.0f} {n_rss / 1024:>8.1f} M")
print(f"{f'{wide} files, concurrency {wide}':<34} {w_wall:>9.0f} {ideal_wide:>9} "
      f"{w_wall / ideal_wide:>6.3f} {w_cpu:>8.0f} {w_rss / 1024:>8.1f} M")
print()
print(f"requests sent: {n_req} and {w_req}; peak in flight at the provider: {n_peak} and "
      f"{w_peak}")
print(f"athena's own peak in flight: {n_own_peak:.0f} and {w_own_peak:.0f}")
print(f"wall / ideal at concurrency {conc}: {n_wall / ideal:.3f} (target <= 1.10)")
rounds = math.ceil(files / conc)
print(f"mean request latency seen by athena: {n_latency:.1f} ms (provider delay {delay} ms); "
      f"wall / (rounds x mean latency): {n_wall / (rounds * n_latency):.3f}")
print(f"with {wide} at once: mean latency {w_latency:.1f} ms")
print(f"CPU per request, whole scan: {n_cpu / files:.3f} ms; dispatch only (minus the "
      f"builtin baseline): {(n_cpu - b_cpu) / files:.3f} ms (target <= 0.3)")
print(f"peak RSS with {wide} in flight vs {conc}: {w_rss / 1024:.1f} M vs {n_rss / 1024:.1f} M")
PY
