#!/usr/bin/env bash
# Style gate: clang-format drift and clang-tidy findings fail the run.
#   scripts/check-style.sh [--fix] [BUILD_DIR]
# C++ files take the root .clang-format; the C that clang -target bpf builds
# (bpf/, kernel/: *.c and the C headers, which open with an SPDX C comment)
# takes the kernel style of their folder's .clang-format. clang-tidy runs on
# every C++ source the build compiles (BUILD_DIR/compile_commands.json), with
# the root .clang-tidy. The include directions between folders are checked
# too (docs/architecture.md: arrows point down). --fix only rewrites the
# formatting in place and stops (tidy findings are left to a person).
# TIERFS_TIDY_CACHE: where clang-tidy's clean results are remembered
# (scripts/check-tidy.py; `off` runs every source).
set -euo pipefail
cd "$(dirname "$0")/.."
fix=false
[ "${1:-}" = --fix ] && { fix=true; shift; }
build_dir=${1:-${BUILD_DIR:-build}}

is_kernel_c() {
  case "$1" in
    *.c) return 0 ;;
    bpf/*.h | kernel/*.h) head -1 "$1" | grep -q '^/\* SPDX' ;;
    *) return 1 ;;
  esac
}

status=0
# The files of each style, then one clang-format per style (one per file
# was 26 CPU-s, most of it starting clang-format 200 times; one per style is
# under 1): only a style whose files are not all clean is checked file by
# file, to name them.
declare -A by_style=()
while IFS= read -r file; do
  style=file:.clang-format
  if is_kernel_c "$file"; then style=file:$(dirname "$file")/.clang-format; fi
  by_style[$style]+="$file"$'\n'
done < <(git ls-files '*.c' '*.cc' '*.h' | grep -v '^tests/configs/')
drift=()
for style in "${!by_style[@]}"; do
  mapfile -t files < <(printf '%s' "${by_style[$style]}")
  if $fix; then
    clang-format -i --style="$style" "${files[@]}"
  elif ! clang-format --dry-run --Werror --style="$style" "${files[@]}" 2>/dev/null; then
    for file in "${files[@]}"; do
      clang-format --dry-run --Werror --style="$style" "$file" 2>/dev/null || drift+=("$file")
    done
  fi
done
$fix && { echo "check-style: formatted"; exit 0; }
if [ ${#drift[@]} -gt 0 ]; then
  echo "check-style: ${#drift[@]} file(s) not clang-formatted (scripts/check-style.sh --fix): ${drift[*]}" >&2
  status=1
fi

# Which folders each folder may include from (its own always).
declare -A may_include=(
  [numa]="numa"
  [kernel]="kernel"
  [bpf]="bpf kernel"
  [tierfs/core]="tierfs/core numa bpf"
  [tierfs/jobs]="tierfs/jobs tierfs/core numa"
  [tierfs/server]="tierfs/server tierfs/core numa bpf kernel"
  [tierfs/cli]="tierfs/cli tierfs/server tierfs/jobs tierfs/core numa bpf kernel"
)
for folder in "${!may_include[@]}"; do
  while IFS=: read -r file target; do
    target_folder=$(dirname "$target")
    case " ${may_include[$folder]} " in
      *" $target_folder "*) ;;
      *)
        echo "check-style: $file includes \"$target\": $folder may include only ${may_include[$folder]}" >&2
        status=1
        ;;
    esac
  done < <(git grep -o '#include "[a-z_]*/[a-z_/]*\.h"' -- "$folder" | sed 's/#include "//; s/"$//')
done

if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "check-style: $build_dir/compile_commands.json missing: configure the build first" >&2
  exit 1
fi
# clang-tidy on every C++ translation unit of the project that the build
# compiles, slowest first, skipping those whose every input is unchanged
# since a clean run (scripts/check-tidy.py says how it knows).
if ! python3 scripts/check-tidy.py "$build_dir"; then
  status=1
elif [ "$status" = 0 ]; then
  echo "check-style: clang-format clean; clang-tidy clean ($SECONDS s)"
fi
exit $status
