#!/usr/bin/env bash
# Measures the mounted server's seccomp allow-list (tierfs/server/privilege.cc):
# runs meson tests with TIERFS_SECCOMP=log, where the filter lets every call
# run and the kernel logs each one not on the list ("audit: type=1326 ...
# code=0x7ffc0000"), then prints those calls by name with their counts. An
# empty report means the list covers everything the tests made the server do.
#   scripts/seccomp-audit.sh BUILD_DIR [meson test arguments, e.g. --suite security]
# Needs root (to mount and to read the kernel log) and scmp_sys_resolver
# (Debian package seccomp). The kernel rate-limits audit lines it prints
# without auditd; a "callbacks suppressed" or "printk limit" line in the
# report means some were dropped: run again on fewer suites.
set -euo pipefail
build=${1:?usage: seccomp-audit.sh BUILD_DIR [meson test arguments]}
shift
command -v scmp_sys_resolver >/dev/null || { echo "seccomp-audit: needs scmp_sys_resolver (apt-get install seccomp)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "seccomp-audit: needs root (mounts, /dev/kmsg)" >&2; exit 1; }

marker="tierfs-seccomp-audit-$$-$RANDOM"
echo "$marker" >/dev/kmsg
status=0
TIERFS_SECCOMP=log TIERFS_REQUIRE_PRIVILEGED=1 meson test -C "$build" --num-processes 2 "$@" || status=$?

log=$(dmesg | sed -n "/$marker/,\$p")
dropped=$(printf '%s\n' "$log" | grep -E "callbacks suppressed|printk limit|rate limit" || true)
echo "seccomp-audit: calls outside the allow-list (count name), meson test exit $status:"
printf '%s\n' "$log" | grep 'type=1326' | grep 'comm="tierfs"' | grep 'code=0x7ffc0000' |
  sed -n 's/.* syscall=\([0-9]*\) .*/\1/p' | sort -n | uniq -c |
  while read -r count nr; do
    printf '%8d %s (%s)\n' "$count" "$(scmp_sys_resolver "$nr")" "$nr"
  done
if [ -n "$dropped" ]; then
  echo "seccomp-audit: the kernel dropped audit lines; the report may be incomplete:"
  printf '%s\n' "$dropped"
fi
