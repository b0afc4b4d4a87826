#!/usr/bin/env bash
# Fetches Debian's stock kernel package with `apt-get download` and unpacks it
# into a cache directory, so the VM harness boots a distribution kernel and never
# one built here. Prints the unpacked tree (it holds boot/vmlinuz-VER and
# lib/modules/VER with modules.dep) on stdout.
#   fetch-kernel.sh CACHE_DIR [FLAVOUR]
# FLAVOUR: cloud-amd64 (default, Debian 12's 6.1) or amd64, or the same with a
# series in front, 6.12-cloud-amd64 or 6.12-amd64 (Debian 12's security
# archive carries Linux 6.12, which has FUSE passthrough and weighted
# interleave; 6.1 has neither). The cloud flavour is a third of the size and
# has everything the VM needs (ACPI NUMA, libnvdimm, nd_e820, nd_pmem,
# device_dax, dax_pmem, fuse, BPF, BTF).
set -euo pipefail

cache=${1:?usage: fetch-kernel.sh CACHE_DIR [cloud-amd64|amd64]}
flavour=${2:-cloud-amd64}
case "$flavour" in
  cloud-amd64 | amd64 | 6.12-cloud-amd64 | 6.12-amd64) ;;
  *)
    echo "fetch-kernel: unknown flavour '$flavour' (want cloud-amd64, amd64, 6.12-cloud-amd64 or 6.12-amd64)" >&2
    exit 2 ;;
esac
meta=linux-image-$flavour

# The metapackage only depends on the versioned image package; that one holds the kernel.
# linux-image-6.12-cloud-amd64 depends on linux-image-6.12.N+deb12-cloud-amd64.
resolve_image_package() {
  apt-cache depends --no-recommends --no-suggests "$meta" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-'"${flavour#*.*-}"'\)$/\1/p' | head -n 1
}

package=$(resolve_image_package)
if [ -z "$package" ]; then
  # A fresh machine may never have read the package lists.
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >&2 || true
  elif command -v sudo >/dev/null; then
    sudo -n apt-get update -qq >&2 || true
  fi
  package=$(resolve_image_package)
fi
if [ -z "$package" ]; then
  echo "fetch-kernel: apt-cache knows no package that $meta depends on (run apt-get update?)" >&2
  exit 1
fi

mkdir -p "$cache"
tree="$cache/$package"
exec 9>"$cache/.lock"
flock 9 # two test runs sharing one cache unpack once

if [ ! -f "$tree/.complete" ]; then
  work=$(mktemp -d "$cache/.fetch-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "fetch-kernel: downloading $package" >&2
  # apt-get download writes into the current directory; as root it would warn that
  # the _apt user cannot write there, so it downloads as the caller.
  (cd "$work" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$package" >&2)
  deb=$(ls "$work"/*.deb)
  dpkg-deb -x "$deb" "$work/root"
  version=$(basename "$(ls -d "$work"/root/lib/modules/*/)")
  # The package ships no modules.dep: the postinst normally runs depmod.
  /sbin/depmod -b "$work/root" "$version"
  rm -f "$deb"
  rm -rf "$tree"
  touch "$work/root/.complete"
  mv "$work/root" "$tree"
fi
echo "$tree"
