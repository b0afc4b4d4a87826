#!/usr/bin/env bash
# Fetches and unpacks Debian's fuse3 source package (libfuse 3.18) with apt's
# own tools, for build_libfuse.sh. The archive address comes from this
# machine's apt configuration: the repository that serves the installed
# release's own suite (VERSION_CODENAME) gets a deb-src line for the suite
# that carries 3.18. The lists live in a private apt state directory, so the
# system's apt configuration is not touched.
#   scripts/fetch_libfuse.sh WORKDIR [SUITE] [VERSION_PREFIX]
# Prints the unpacked source directory on its last line.
set -euo pipefail

work=${1:?usage: fetch_libfuse.sh WORKDIR [SUITE] [VERSION_PREFIX]}
suite=${2:-sid}
want=${3:-3.18}
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
work=$(cd "$work" && pwd)

. /etc/os-release
release=${VERSION_CODENAME:?/etc/os-release has no VERSION_CODENAME}
# apt's own view of the configured archives: the one whose suite is the release itself.
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' "Created-By: Packages" |
  awk -v r="$release" '$2 == r { print $1; exit }')
if [ -z "$uri" ]; then
  echo "fetch_libfuse: no apt repository for suite '$release' in this machine's apt configuration" >&2
  exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch_libfuse: $keyring missing (package debian-archive-keyring)" >&2; exit 1; }
echo "deb-src [signed-by=$keyring] $uri $suite main" >"$work/apt/sources.list"

apt_private=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
apt-get "${apt_private[@]}" -qq update
versions=$(apt-cache "${apt_private[@]}" showsrc fuse3 | awk '/^Version:/ { print $2 }' | sort -V)
# The wanted release if the suite still has it, else the newest one after it.
version=$(grep "^$want" <<<"$versions" | tail -1 || true)
if [ -z "$version" ]; then
  for v in $versions; do
    dpkg --compare-versions "$v" gt "$want" && version=$v
  done
fi
if [ -z "$version" ]; then
  echo "fetch_libfuse: no fuse3 $want or newer source in $uri $suite" >&2
  exit 1
fi
cd "$work/src"
# apt-get source checks the .dsc's signature chain through the Release file and unpacks with dpkg-source.
apt-get "${apt_private[@]}" -qq source "fuse3=$version" >/dev/null
dir=$(find "$work/src" -maxdepth 1 -type d -name "fuse3-*" | sort -V | tail -1)
[ -f "$dir/meson.build" ] || { echo "fetch_libfuse: unpacking fuse3 $version failed" >&2; exit 1; }
echo "$dir"
