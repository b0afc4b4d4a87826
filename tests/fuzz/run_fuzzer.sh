#!/usr/bin/env bash
# Runs a libFuzzer binary for SECONDS over a copy of the seed folders and
# fails on any crash, leak or sanitizer report (exit 1: libFuzzer's own default,
# 77, would read as "skipped" to meson).
set -euo pipefail
binary=$1 seconds=$2
shift 2
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for seeds in "$@"; do cp "$seeds"/*.toml "$corpus"/ 2>/dev/null || true; done
cd "$corpus"
"$binary" -max_total_time="$seconds" -timeout=10 -error_exitcode=1 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$corpus/" "$corpus" 2>&1 | tail -n 25
