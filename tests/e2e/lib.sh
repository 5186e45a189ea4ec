# Shared helpers for the end-to-end tests: each test sources this file, builds a tree under
# $WORK and runs $ATHENA against it with its own cache folder.
set -euo pipefail

ATHENA=${ATHENA_BIN:?ATHENA_BIN must name the built athena binary}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/athena-e2e.XXXXXX")
export XDG_CONFIG_HOME="$WORK/config"
export NO_COLOR=1
# Settings from the machine's environment must not reach the binary under test: above all no
# provider key, so that no request can leave for a real provider's default URL.
for name in $(compgen -e); do
    case "$name" in
    ATHENA_BIN | ATHENA_SOURCE_DIR) ;;
    FEATURE_* | REDIS_* | ATHENA_* | APM_* | *_API_KEY | *_BASE_URL) unset "$name" ;;
    esac
done
export ATHENA_CACHE_DIR="$WORK/cache"
cleanup() {
    chmod -R u+rwx "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
    checks=$((checks + 1))
    if [[ "$2" != "$3" ]]; then
        fail "$1: expected '$3', got '$2'"
    fi
}

# expect_match NAME TEXT REGEX
expect_match() {
    checks=$((checks + 1))
    if ! grep -Eq -- "$3" <<<"$2"; then
        fail "$1: '$2' does not match /$3/"
    fi
}

# Runs athena, storing stdout, stderr and the exit status in OUT, ERR and RC.
run_athena() {
    local out_file="$WORK/.out" err_file="$WORK/.err"
    set +e
    "$ATHENA" "$@" >"$out_file" 2>"$err_file"
    RC=$?
    set -e
    OUT=$(cat "$out_file")
    ERR=$(cat "$err_file")
}

summary_field() {
    jq -r "select(.type==\"summary\") | $1" <<<"$OUT"
}

# Waits until the files' last change (ctime included, which touch cannot set back) is over a
# second old: the stat cache re-reads files changed within a second of its entry, by design.
age_files() {
    find "$@" -type f -exec touch -d '5 seconds ago' {} +
    sleep 1.2
}

finish() {
    if ((failures > 0)); then
        echo "$failures of $checks checks failed" >&2
        exit 1
    fi
    echo "$checks checks passed"
}
