#!/usr/bin/env bash
# Settings layer as documented: command line > environment > config file > default, and
# 'athena flags' names where each value came from.
source "$(dirname "$0")/lib.sh"

flag_line() { grep -E "^$1 " <<<"$OUT"; }

run_athena flags
expect_eq "flags exit" "$RC" 0
expect_match "default value" "$(flag_line memory-cache)" "true +default"

mkdir -p "$XDG_CONFIG_HOME/athena"
cat >"$XDG_CONFIG_HOME/athena/config.toml" <<'TOML'
[features]
memory_cache = false

[scan]
fail_on = "suspicious"
TOML
run_athena flags
expect_match "config value" "$(flag_line memory-cache)" "false +config .*config.toml:2"
expect_match "config choice" "$(flag_line fail-on)" "suspicious +config"

FEATURE_ENABLEMEMORYCACHE=true run_athena flags
expect_match "env beats config" "$(flag_line memory-cache)" "true +env FEATURE_ENABLEMEMORYCACHE"

FEATURE_ENABLEMEMORYCACHE=true run_athena flags --disable memory-cache
expect_match "command line beats env" "$(flag_line memory-cache)" "false +command line"

run_athena flags --json
expect_eq "json flags" "$(jq -r '.[] | select(.name=="memory-cache") | .source' <<<"$OUT")" \
    config

printf 'unknown_key = 1\n' >"$WORK/bad.toml"
run_athena flags --config "$WORK/bad.toml"
expect_eq "bad config exit" "$RC" 2
expect_match "bad config names the key" "$ERR" "unknown_key"

# A disabled tier is not consulted: with memory off, a rerun hits SQLite only.
mkdir -p "$WORK/tree"
printf 'x\n' >"$WORK/tree/x"
printf 'y\n' >"$WORK/tree/y"
run_athena scan --json "$WORK/tree"
run_athena scan --json "$WORK/tree"
expect_eq "no memory tier hits" "$(summary_field '.cache.by_tier.memory // 0')" 0
expect_eq "sqlite answers" "$(summary_field .cache.by_tier.sqlite)" 2

FEATURE_CACHEANALYSISRESULTS=false run_athena scan --json --cache-dir "$WORK/c2" "$WORK/tree"
FEATURE_CACHEANALYSISRESULTS=false run_athena scan --json --cache-dir "$WORK/c2" "$WORK/tree"
expect_eq "results not cached" "$(summary_field .analyses)" 2

finish
