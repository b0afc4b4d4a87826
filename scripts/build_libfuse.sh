#!/usr/bin/env bash
# Builds libfuse 3.18 from Debian's fuse3 source package into a private prefix
# (a static library and its headers; nothing is installed system-wide), for
# tierfs's -Dlibfuse_prefix option. Debian 12's libfuse is 3.14: no FUSE over
# io_uring, requests capped at 1 MiB, no FUSE_CAP_DIRECT_IO_ALLOW_MMAP.
#   scripts/build_libfuse.sh PREFIX [WORKDIR]
# then:  meson setup build-fuse318 -Dlibfuse_prefix=PREFIX
set -euo pipefail

prefix=${1:?usage: build_libfuse.sh PREFIX [WORKDIR]}
work=${2:-$prefix.work}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$prefix" "$work"
prefix=$(cd "$prefix" && pwd)

for p in liburing-dev libnuma-dev meson ninja-build dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "build_libfuse: package $p missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

src=$("$here/fetch_libfuse.sh" "$work" | tail -1)
# Static, so tierfs needs no rpath; no helpers, examples or tests: tierfs
# mounts as root (mount(2)) or through the system's fusermount3.
rm -rf "$work/build"
meson setup "$work/build" "$src" --prefix="$prefix" --libdir=lib \
  -Ddefault_library=static -Dbuildtype=release -Dutils=false -Dexamples=false -Dtests=false \
  -Denable-io-uring=true -Dinitscriptdir= -Dudevrulesdir="$prefix/udev" >"$work/setup.log" ||
  { cat "$work/setup.log" >&2; echo "build_libfuse: meson setup failed" >&2; exit 1; }
grep -q "HAVE_URING" "$work/build/config.h" 2>/dev/null || grep -rq "HAVE_URING" "$work/build/"*.h ||
  { echo "build_libfuse: libfuse configured without io_uring (liburing with SQE128?)" >&2; exit 1; }
ninja -C "$work/build" >"$work/build.log" ||
  { tail -20 "$work/build.log" >&2; echo "build_libfuse: build failed" >&2; exit 1; }
meson install -C "$work/build" --only-changed >"$work/install.log"
test -f "$prefix/lib/libfuse3.a" -a -f "$prefix/include/fuse3/fuse_lowlevel.h" ||
  { echo "build_libfuse: $prefix lacks lib/libfuse3.a or include/fuse3" >&2; exit 1; }
echo "build_libfuse: libfuse $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/fuse3.pc") in $prefix"
