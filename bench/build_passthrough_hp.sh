#!/usr/bin/env bash
# Builds libfuse 3.18's own example/passthrough_hp (the reference column of
# `server_bench.sh --table --passthrough-hp`) from Debian's fuse3 source
# package, the same source scripts/build_libfuse.sh builds tierfs's libfuse
# from. Only the example is built, linked statically; nothing is installed.
#   bench/build_passthrough_hp.sh [WORKDIR]    (default /var/tmp/tierfs-passthrough-hp)
# Prints the binary's path on its last line.
set -euo pipefail

work=${1:-/var/tmp/tierfs-passthrough-hp}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
src=$("$here/../scripts/fetch_libfuse.sh" "$work" | tail -1)
if [ ! -f "$work/build/build.ninja" ]; then
  meson setup "$work/build" "$src" -Ddefault_library=static -Dbuildtype=release \
    -Dutils=false -Dexamples=true -Dtests=false -Denable-io-uring=true >"$work/setup.log" ||
    { cat "$work/setup.log" >&2; echo "build_passthrough_hp: meson setup failed" >&2; exit 1; }
fi
ninja -C "$work/build" example/passthrough_hp >"$work/build.log" ||
  { tail -20 "$work/build.log" >&2; echo "build_passthrough_hp: build failed" >&2; exit 1; }
echo "$work/build/example/passthrough_hp"
