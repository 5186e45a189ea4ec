# Shared helpers for the provider end-to-end tests: sources lib.sh, starts the fake provider
# on 127.0.0.1 with a random port, and points every provider preset at it, so that no test
# can send a request anywhere else. The fake provider is stopped by its pid on exit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOURCE_DIR=${ATHENA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
FAKE_PROVIDER="$SOURCE_DIR/tests/fake_provider/fake_provider.py"

if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    echo "SKIP: the fake provider needs python3 and curl" >&2
    exit 77
fi

FAKE_PID=""
stop_fake_provider() {
    if [[ -n $FAKE_PID ]]; then
        kill "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
        FAKE_PID=""
    fi
    cleanup
}
trap stop_fake_provider EXIT

python3 "$FAKE_PROVIDER" --port 0 --port-file "$WORK/fake.port" --max-lifetime 900 \
    2>"$WORK/fake.log" &
FAKE_PID=$!
for _ in $(seq 1 100); do
    [[ -s $WORK/fake.port ]] && break
    sleep 0.05
done
if [[ ! -s $WORK/fake.port ]]; then
    echo "FAIL: the fake provider did not start:" >&2
    cat "$WORK/fake.log" >&2
    exit 1
fi
FAKE_PORT=$(tr -d '[:space:]' <"$WORK/fake.port")
FAKE_URL="http://127.0.0.1:$FAKE_PORT"

# Nothing from the caller's environment may redirect a request or pick a provider.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset FEATURE_AIPROVIDERPRIORITY FEATURE_ENABLEAIFAILOVER FEATURE_ENABLEBUILTINFALLBACK
unset ATHENA_OFFLINE ATHENA_MAX_COST GOOGLE_API_KEY GOOGLE_GEMINI_BASE_URL

# Keys that the tests look for in every output and cache file.
export ANTHROPIC_API_KEY=sk-ant-e2e-SECRET-a1b2c3d4e5f6
export OPENAI_API_KEY=sk-openai-e2e-SECRET-f6e5d4c3b2a1
export GEMINI_API_KEY=gemini-e2e-SECRET-0a9b8c7d6e5f
export DEEPSEEK_API_KEY=sk-deepseek-e2e-SECRET-1111
export GROQ_API_KEY=gsk-e2e-SECRET-2222
export MISTRAL_API_KEY=mistral-e2e-SECRET-3333
SECRET_KEYS=("$ANTHROPIC_API_KEY" "$OPENAI_API_KEY" "$GEMINI_API_KEY")

export ANTHROPIC_BASE_URL="$FAKE_URL"
export OPENAI_BASE_URL="$FAKE_URL/v1"
export GEMINI_BASE_URL="$FAKE_URL"
export DEEPSEEK_BASE_URL="$FAKE_URL/v1"
export GROQ_BASE_URL="$FAKE_URL/openai/v1"
export MISTRAL_BASE_URL="$FAKE_URL/v1"
export OLLAMA_BASE_URL="$FAKE_URL/v1"
export VLLM_BASE_URL="$FAKE_URL/v1"
export LLAMACPP_BASE_URL="$FAKE_URL/v1"

# Fast retries, so that a test of several retries takes milliseconds.
export ATHENA_RETRY_BASE_DELAY=20ms

# fake_config JSON: applies a POST /_config payload.
fake_config() {
    curl -sf -X POST "$FAKE_URL/_config" -d "$1" >/dev/null
}

# fake_reset: zeroes the counters and clears the faults.
fake_reset() {
    curl -sf -X POST "$FAKE_URL/_reset" >/dev/null
}

# fake_stat JQ: a value from GET /_stats.
fake_stat() {
    curl -sf "$FAKE_URL/_stats" | jq -r "$1"
}

# fake_requests FORMAT: requests the fake provider received in that wire format.
fake_requests() {
    fake_stat ".by_format.$1"
}

# file_field NAME JQ: a field of the record whose path ends in NAME.
file_field() {
    jq -r "select(.type==\"file\" and (.path|endswith(\"/$1\"))) | $2" <<<"$OUT"
}

# provider_field NAME JQ: a field of a provider in the summary's analysis part.
provider_field() {
    summary_field ".analysis.providers[] | select(.name==\"$1\") | $2"
}

# expect_no_secret NAME TEXT: no test key appears in TEXT.
expect_no_secret() {
    local key
    for key in "${SECRET_KEYS[@]}"; do
        checks=$((checks + 1))
        if grep -qF -- "$key" <<<"$2"; then
            fail "$1: contains an API key"
        fi
    done
}
