#!/bin/sh
# Runs one libFuzzer binary for a bounded time on a scratch copy of its seed
# corpus (so the source tree is never written to). Crashes land in the
# scratch dir and fail the test; add them to the corpus once fixed.
set -eu
bin=$1 corpus=$2 seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus" "$work/corpus"
cd "$work"
dict=${corpus%/corpus/*}/$(basename "$bin").dict
extra=""
[ -f "$dict" ] && extra="-dict=$dict"
exec "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 $extra corpus
