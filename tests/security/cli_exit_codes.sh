#!/bin/bash
# Usage errors exit 2 with one line naming what is wrong (an unknown command
# by its name) and where help is; other failures exit 1; a directory or an
# unreadable file given as the configuration is named as such. Before: exit
# statuses 105/106/109, "A subcommand is required" for a misspelt command,
# "1:1: no [[tier]]" for a directory, and two-line CLI11 messages.
set -uo pipefail
TIERFS_BIN=${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}
WORK=$(mktemp -d /tmp/tierfs-cli-XXXXXX)
USER_NAME=
cleanup() {
  [ -z "$USER_NAME" ] || userdel "$USER_NAME" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# expect STATUS TEXT ARGS...: runs tierfs ARGS; checks the status and that
# stderr is exactly one line containing TEXT (a fixed string).
expect() {
  local want=$1 text=$2 status=0
  shift 2
  "$TIERFS_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
  [ "$status" -eq "$want" ] || fail "tierfs $*: exit $status, expected $want: $(cat "$WORK/err")"
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "tierfs $*: not one line: $(cat "$WORK/err")"
  grep -qF -- "$text" "$WORK/err" || fail "tierfs $*: '$(cat "$WORK/err")' does not say '$text'"
}

# Usage errors: 2.
expect 2 "tierfs: unknown command 'frobnicate'; see tierfs --help" frobnicate
expect 2 "tierfs: unknown command 'job frob'; see tierfs job --help" job frob
expect 2 "tierfs: unknown command 'stage sideways'; see tierfs stage --help" stage sideways
long=$(printf 'x%.0s' $(seq 1 300))
expect 2 "tierfs: unknown command '$(printf 'x%.0s' $(seq 1 64))...'" "$long"
expect 2 "subcommand is required; see tierfs --help"
expect 2 "MOUNTPOINT is required; see tierfs mount --help" mount
expect 2 "--bogus; see tierfs check-config --help" check-config --bogus x
expect 2 "see tierfs bpf check --help" bpf check --cases 0
expect 2 "FILE (or --default) is required; see tierfs check-config --help" check-config
# The mount(8) helper form that cannot be read is a usage error too.
expect 2 'is not understood' source "$WORK" --frob

# Other failures: 1, with the path and what it is.
mkdir "$WORK/dir.toml"
expect 1 "$WORK/dir.toml: is a directory, not a configuration file" check-config "$WORK/dir.toml"
mkdir "$WORK/mnt"
expect 1 "tierfs: $WORK/dir.toml: is a directory, not a configuration file" \
  mount --config "$WORK/dir.toml" "$WORK/mnt"
expect 1 "$WORK/absent.toml: cannot read the configuration file: No such file or directory" \
  check-config "$WORK/absent.toml"
mkfifo "$WORK/fifo.toml"
expect 1 "$WORK/fifo.toml: is not a regular file, so not a configuration file" \
  check-config "$WORK/fifo.toml"
expect 1 "is not a regular file" check-config /dev/null

# An unreadable file, as a user who cannot read it (root reads everything).
if [ "$(id -u)" -eq 0 ] && command -v useradd >/dev/null; then
  USER_NAME="tfcli$$"
  useradd -M -N -s /usr/sbin/nologin "$USER_NAME" 2>/dev/null ||
    { sleep 1; useradd -M -N -s /usr/sbin/nologin "$USER_NAME"; } || fail "cannot create a user"
  chmod 0755 "$WORK"
  printf '[[tier]]\nname = "t"\nregions = ["numa:0"]\nsize = "64MiB"\n' >"$WORK/secret.toml"
  chmod 0600 "$WORK/secret.toml"
  status=0
  runuser -u "$USER_NAME" -- "$TIERFS_BIN" check-config "$WORK/secret.toml" >/dev/null 2>"$WORK/err" ||
    status=$?
  [ "$status" -eq 1 ] || fail "unreadable config: exit $status: $(cat "$WORK/err")"
  grep -qF "$WORK/secret.toml: cannot read the configuration file: Permission denied" "$WORK/err" ||
    fail "unreadable config: $(cat "$WORK/err")"
fi

# Help and version: 0, on stdout.
"$TIERFS_BIN" --help >"$WORK/out" || fail "--help exits non-zero"
grep -q "check-config" "$WORK/out" || fail "--help does not list the commands"
"$TIERFS_BIN" mount --help >/dev/null || fail "mount --help exits non-zero"
version=$("$TIERFS_BIN" --version) || fail "--version exits non-zero"
printf '%s\n' "$version" | grep -qx "tierfs [0-9][0-9.]*, libfuse ${TIERFS_LIBFUSE_VERSION:-3}[0-9.]*" ||
  fail "--version says '$version', not 'tierfs VERSION, libfuse ${TIERFS_LIBFUSE_VERSION:-VERSION}'"
echo PASS
