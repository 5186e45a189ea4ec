#!/usr/bin/env bash
# The man page documents every option the binary accepts, every setting and subcommand,
# and its generated sections match the binary.
source "$(dirname "$0")/lib.sh"

source_dir=${ATHENA_SOURCE_DIR:?}
manual="$source_dir/man/athena.1"
# roff escapes '-' as '\-'; compare against the text with escapes removed.
text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$manual")
providers='anthropic|openai|gemini|deepseek|groq|mistral|ollama|vllm|llamacpp'

options=$("$ATHENA" completion bash | grep -Eo -- '--[a-z0-9-]+' |
    sed -E "s/^--($providers)-/--PROVIDER-/" | sort -u)
for option in $options; do
    checks=$((checks + 1))
    if ! grep -q -- "${option#--}" <<<"$text"; then
        fail "option $option is not in man/athena.1"
    fi
done

run_athena flags --json
for name in $(jq -r '.[].name' <<<"$OUT" | sed -E "s/^($providers)-/PROVIDER-/" | sort -u); do
    checks=$((checks + 1))
    if ! grep -q -- "$name" <<<"$text"; then
        fail "setting $name is not in man/athena.1"
    fi
done

for command in scan hash "cache stats" "cache clear" "cache prune" "cache get" flags \
    providers completion; do
    checks=$((checks + 1))
    if ! grep -q -- "$command" <<<"$text"; then
        fail "subcommand $command is not in man/athena.1"
    fi
done

# The committed page is what scripts/gen-man makes from this binary.
cp -r "$source_dir/man" "$WORK/man"
mkdir -p "$WORK/scripts"
cp "$source_dir/scripts/gen-man" "$WORK/scripts/"
python3 "$WORK/scripts/gen-man" "$ATHENA"
checks=$((checks + 1))
if ! diff -q "$WORK/man/athena.1" "$manual" >/dev/null; then
    fail "man/athena.1 is out of date: run scripts/gen-man and commit the result"
fi

checks=$((checks + 1))
if ! bash -n <("$ATHENA" completion bash); then
    fail "the bash completion script has a syntax error"
fi

finish
