#!/usr/bin/env bash
# Throwaway redis-server instances for tests: each listens on 127.0.0.1 on a free port, keeps
# its files in a temporary folder, and is stopped by its pid.
#
# Sourced by the end-to-end tests:
#   source tests/redis_server.sh
#   redis_start NAME [redis-server options...]   sets REDIS_<NAME>_PORT, _PID, _URL, _DIR
#   redis_stop NAME                              stops it (SIGTERM, then SIGKILL)
#   redis_kill NAME                              SIGKILL, as a crash would
#   redis_stop_all                               for an EXIT trap
#
# Run as a script, it starts one server, runs a command with ATHENA_TEST_REDIS_URL set to it
# and stops the server afterwards:
#   tests/redis_server.sh run COMMAND [ARGS...]
# The exit status is the command's, or 77 (skipped) when redis-server is not installed.

REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
_redis_names=()

# Prints a TCP port on 127.0.0.1 that was free a moment ago.
_redis_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# redis_start NAME [options]: starts a server and waits until it replies to PING. Options after
# NAME go to redis-server (e.g. --requirepass SECRET, --appendonly yes). A port taken between
# the probe and the start is retried with another.
redis_start() {
    local name=$1
    shift
    local dir port pid attempt
    dir=$(mktemp -d "${TMPDIR:-/tmp}/athena-redis.XXXXXX")
    for attempt in 1 2 3 4 5; do
        port=$(_redis_free_port)
        "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no --dir "$dir" --logfile "$dir/redis.log" "$@" &
        pid=$!
        if _redis_wait_ready "$port" "$pid" "$@"; then
            printf -v "REDIS_${name}_PORT" '%s' "$port"
            printf -v "REDIS_${name}_PID" '%s' "$pid"
            printf -v "REDIS_${name}_DIR" '%s' "$dir"
            printf -v "REDIS_${name}_URL" 'redis://127.0.0.1:%s/0' "$port"
            _redis_names+=("$name")
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "redis_start: redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2 || true
    return 1
}

# Waits up to 5 s for a reply to PING, passing --requirepass on to redis-cli.
_redis_wait_ready() {
    local port=$1 pid=$2
    shift 2
    local password=""
    while (($# > 0)); do
        if [[ $1 == --requirepass ]]; then
            password=$2
        fi
        shift
    done
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if REDISCLI_AUTH=$password "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping 2>/dev/null |
            grep -q PONG; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

_redis_signal() {
    local signal=$1 name=$2
    local pid_var="REDIS_${name}_PID"
    local pid=${!pid_var:-}
    if [[ -n $pid ]]; then
        kill "-$signal" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        printf -v "$pid_var" '%s' ""
    fi
}

redis_stop() {
    _redis_signal TERM "$1"
    local dir_var="REDIS_${1}_DIR"
    if [[ -n ${!dir_var:-} ]]; then
        rm -rf "${!dir_var}"
    fi
}

# Kills the server as a crash would; its folder stays, so it can be restarted on the same
# port with the same data (redis_restart).
redis_kill() {
    _redis_signal KILL "$1"
}

# redis_restart NAME [options]: starts the server again on its old port and folder.
redis_restart() {
    local name=$1
    shift
    local port_var="REDIS_${name}_PORT" dir_var="REDIS_${name}_DIR"
    local port=${!port_var} dir=${!dir_var}
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$dir" --logfile "$dir/redis.log" "$@" &
    local pid=$!
    if ! _redis_wait_ready "$port" "$pid" "$@"; then
        echo "redis_restart: redis-server did not start on port $port" >&2
        return 1
    fi
    printf -v "REDIS_${name}_PID" '%s' "$pid"
}

redis_stop_all() {
    local name
    for name in "${_redis_names[@]}"; do
        redis_stop "$name"
    done
}

# redis_cli NAME ARGS...: redis-cli against the named server.
redis_cli() {
    local port_var="REDIS_${1}_PORT"
    shift
    "$REDIS_CLI" -h 127.0.0.1 -p "${!port_var}" "$@"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    if [[ ${1:-} != run || $# -lt 2 ]]; then
        echo "usage: $0 run COMMAND [ARGS...]" >&2
        exit 2
    fi
    shift
    if ! command -v "$REDIS_SERVER" >/dev/null; then
        echo "skipped: $REDIS_SERVER is not installed" >&2
        exit 77
    fi
    trap redis_stop_all EXIT
    redis_start TEST
    set +e
    ATHENA_TEST_REDIS_URL=$REDIS_TEST_URL "$@"
    status=$?
    set -e
    exit "$status"
fi
