#!/bin/bash
# allow_other without default_permissions is refused (the server checks no
# permissions itself): before, any local user read root's 0600 files and
# wrote, chmod'ed, chown'ed and deleted in root's directories. With
# default_permissions, another user gets no more than stat/statfs show.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_evil_user

tier='[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "16MiB"\ngranularity = "64KiB"\n'
printf "[mount]\nallow_other = true\ndefault_permissions = false\n\n$tier" >"$WORK/open.toml"
try_mount "$WORK/open.toml" "$MNT"
if [ "$MOUNT_STATUS" -eq 0 ]; then
  echo secret >"$MNT/secret"
  chmod 0600 "$MNT/secret"
  as_evil cat "$MNT/secret" >/dev/null 2>&1 && fail "$EVIL_USER read root's 0600 file"
  as_evil rm -f "$MNT/secret" 2>/dev/null && [ ! -e "$MNT/secret" ] && fail "$EVIL_USER deleted root's file"
fi
expect_refused "allow_other without default_permissions" "allow_other needs default_permissions = true"
status=0
"$TIERFS_BIN" check-config "$WORK/open.toml" >/dev/null 2>&1 || status=$?
[ "$status" -eq 1 ] || fail "check-config accepts allow_other without default_permissions ($status)"

# The safe combination: the kernel checks, other users see only what statfs shows.
printf "[mount]\nallow_other = true\n\n$tier" >"$WORK/safe.toml"
try_mount "$WORK/safe.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "allow_other with default_permissions: $MOUNT_ERR"
echo secret >"$MNT/secret"
chmod 0600 "$MNT/secret"
as_evil cat "$MNT/secret" >/dev/null 2>&1 && fail "$EVIL_USER read root's 0600 file"
as_evil touch "$MNT/planted" 2>/dev/null && fail "$EVIL_USER wrote into root's 0755 directory"
as_evil chmod 0666 "$MNT/secret" 2>/dev/null && fail "$EVIL_USER chmod'ed root's file"
as_evil rm -f "$MNT/secret" 2>/dev/null || true
[ -e "$MNT/secret" ] || fail "$EVIL_USER deleted root's file"
"$TIERFS_BIN" stats --json "$MNT" >"$WORK/root-stats.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["tiers"] and d["ops"], d' "$WORK/root-stats.json" ||
  fail "root sees no tier usage"
as_evil "$TIERFS_BIN" stats --json "$MNT" >"$WORK/evil-stats.json" || fail "stats as $EVIL_USER failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["tiers"] and not d["ops"] and d["bpf"]["tiers_map_id"] == 0, d' "$WORK/evil-stats.json" ||
  fail "$EVIL_USER sees tier usage, operation counts or BPF ids: $(cat "$WORK/evil-stats.json")"
chmod 0644 "$MNT/secret"
as_evil "$TIERFS_BIN" map "$MNT/secret" >/dev/null 2>&1 && fail "$EVIL_USER read the layout of root's file"
"$TIERFS_BIN" map "$MNT/secret" >/dev/null || fail "root cannot read the layout"
echo PASS
