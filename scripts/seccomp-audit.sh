#!/usr/bin/env bash
# Measures the mounted server's seccomp allow-list (tierfs/server/privilege.cc).
#   scripts/seccomp-audit.sh BUILD_DIR [meson test arguments, e.g. --suite security]
# Runs the tests with TIERFS_SECCOMP=log, where the filter lets every call run
# and the kernel logs each one off the list ("audit: type=1326 ...
# code=0x7ffc0000"), and prints those calls by name and count: an empty list
# means the allow-list covers everything the tests made the server do. With
# bpftrace installed it also counts every call the sandboxed servers made
# (tracefs mounted in a private mount namespace), which shows entries of the
# list nothing used. Needs root and scmp_sys_resolver (package seccomp). The
# kernel rate-limits the audit lines it prints without auditd; a "callbacks
# suppressed" or "printk limit" line in the report means some were dropped:
# run again on fewer suites.
set -euo pipefail
build=${1:?usage: seccomp-audit.sh BUILD_DIR [meson test arguments]}
shift
command -v scmp_sys_resolver >/dev/null ||
  { echo "seccomp-audit: needs scmp_sys_resolver (apt-get install seccomp)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "seccomp-audit: needs root (mounts, /dev/kmsg)" >&2; exit 1; }
work=$(mktemp -d /tmp/seccomp-audit-XXXXXX)
tracer=
cleanup() {
  [ -z "$tracer" ] || kill "$tracer" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# "COUNT NR" lines -> "COUNT name (NR)", most frequent first.
by_name() {
  sort -rn | while read -r count nr; do
    printf '%10d %s (%s)\n' "$count" "$(scmp_sys_resolver "$nr")" "$nr"
  done
}

if command -v bpftrace >/dev/null; then
  # Threads named tierfs in seccomp filter mode (2) are sandboxed servers.
  unshare -m sh -c 'mount -t tracefs nodev /sys/kernel/tracing && exec bpftrace -o "$1" -e \
    "tracepoint:raw_syscalls:sys_enter /comm == \"tierfs\" && curtask->seccomp.mode == 2/ { @[args->id] = count(); }"' \
    sh "$work/counts" >"$work/bpftrace.log" 2>&1 &
  tracer=$!
  # bpftrace says "Attaching N probes..." into its output file once it counts.
  for _ in $(seq 1 60); do grep -qs Attaching "$work/counts" && break; sleep 1; done
fi
marker="tierfs-seccomp-audit-$$-$RANDOM"
echo "$marker" >/dev/kmsg
status=0
TIERFS_SECCOMP=log TIERFS_REQUIRE_PRIVILEGED=1 meson test -C "$build" --num-processes 2 "$@" || status=$?

log=$(dmesg | sed -n "/$marker/,\$p")
echo "seccomp-audit: calls off the allow-list (count, name), meson test exit $status:"
printf '%s\n' "$log" | grep 'type=1326' | grep 'comm="tierfs"' | grep 'code=0x7ffc0000' |
  sed -n 's/.* syscall=\([0-9]*\) .*/\1/p' | sort -n | uniq -c | by_name || true
dropped=$(printf '%s\n' "$log" | grep -E "callbacks suppressed|printk limit|rate limit" || true)
if [ -n "$dropped" ]; then
  echo "seccomp-audit: the kernel dropped audit lines; the list above may be incomplete:"
  printf '%s\n' "$dropped"
fi
if [ -n "$tracer" ]; then
  kill -INT "$tracer"
  wait "$tracer" || true
  tracer=
  echo "seccomp-audit: every call the sandboxed servers made (count, name):"
  sed -n 's/^@\[\([0-9]*\)\]: \([0-9]*\)$/\2 \1/p' "$work/counts" | by_name
fi
