#!/usr/bin/env bash
# tierfs stats --openmetrics / --prometheus on real mounts: a plain mount with
# traffic, a job mount (slurm_job_id label) and a mount whose server was
# killed (tierfs_up 0 while the others still report), both formats parsed by
# prometheus_client (the OpenMetrics parser is strict), --output written
# whole, and the usage errors. Needs root, /dev/fuse and
# python3-prometheus-client (scripts/setup.sh).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
: "${TIERFS_BIN:?}"
# Debian's python3, not a pyenv one that lacks the package.
py=/usr/bin/python3
$py -c 'import prometheus_client' 2>/dev/null ||
  { echo "FAIL: $py has no prometheus_client (scripts/setup.sh installs python3-prometheus-client)" >&2; exit 1; }

D=$(mktemp -d /tmp/tierfs-metrics-test.XXXXXX)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
killed_pid=""
# A quote, a backslash and a space in the path: label values must be escaped.
plain="$D/a \"q\\b"
finish() {
  "$TIERFS_BIN" job --node-config "$D/node.toml" stop --job-id 4242 >/dev/null 2>&1
  umount "$plain" 2>/dev/null
  umount -l "$D/dead" 2>/dev/null
  [ -n "$killed_pid" ] && "$TIERFS_BIN" cleanup "$D/dead" >/dev/null 2>&1
  rm -rf "$D"
}
trap finish EXIT
mkdir -p "$plain" "$D/dead" "$D/scratch"
cat >"$D/node.toml" <<TOML
[job]
base = "$D/scratch"
state_dir = "$D/run"
default_size = "32MiB"
stop_timeout = 2
TOML
metrics() { "$TIERFS_BIN" stats --node-config "$D/node.toml" "$@"; }

"$TIERFS_BIN" mount "$plain" || { echo "FAIL: mount" >&2; exit 1; }
head -c 3M /dev/urandom >"$plain/a"
cat "$plain/a" >/dev/null
"$TIERFS_BIN" job --node-config "$D/node.toml" start --job-id 4242 --uid 0 --gid 0 ||
  fail "job start"
"$TIERFS_BIN" mount -f "$D/dead" &
killed_pid=$!
for _ in $(seq 50); do grep -q " $D/dead " /proc/self/mountinfo && break; sleep 0.1; done
kill -9 "$killed_pid"
wait "$killed_pid" 2>/dev/null

metrics --openmetrics "$plain" >"$D/one.om" || fail "stats --openmetrics MOUNTPOINT"
metrics --openmetrics --all >"$D/all.om" 2>"$D/all.err" || fail "stats --openmetrics --all"
metrics --prometheus --all --output "$D/all.prom" 2>/dev/null || fail "stats --prometheus --all --output"
grep -q "$D/dead" "$D/all.err" || fail "the dead mount was not named on stderr: $(cat "$D/all.err")"

# Parsed, then the series that must be there with their values.
$py - "$D" "$plain" <<'PY' || fail "parsers"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus
d = sys.argv[1]
def samples(families):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
def value(found, name, **labels):
    for (n, l), v in found.items():
        if n == name and all(dict(l).get(k) == w for k, w in labels.items()):
            return v
    raise SystemExit(f"missing {name} {labels}")
one = samples(openmetrics(open(f"{d}/one.om").read()))
every = samples(openmetrics(open(f"{d}/all.om").read()))
families = list(prometheus(open(f"{d}/all.prom").read()))
prom = samples(families)
types = {f.name: f.type for f in families}
assert types["tierfs_tier_written_bytes"] == "counter", types
assert types["tierfs_tier_used_bytes"] == "gauge", types
plain = sys.argv[2]
assert value(one, "tierfs_up", mount=plain) == 1
assert value(one, "tierfs_tier_written_bytes_total", mount=plain) >= 3 << 20
assert value(one, "tierfs_region_read_bytes_total", mount=plain) > 0
assert value(one, "tierfs_tier_used_bytes", mount=plain) >= 3 << 20
assert value(one, "tierfs_operations_total", mount=plain, op="write") > 0
assert value(one, "tierfs_mover_state", mount=plain, state="off") == 1
# Other mounts of the node (other tests) may be listed too.
assert value(every, "tierfs_mounts") >= 3, value(every, "tierfs_mounts")
assert value(every, "tierfs_up", mount=f"{d}/dead") == 0
assert value(every, "tierfs_up", mount=f"{d}/scratch/4242", slurm_job_id="4242") == 1
assert value(every, "tierfs_tier_capacity_bytes", mount=f"{d}/scratch/4242", slurm_job_id="4242") > 0
for found in (one, every, prom):
    assert all(dict(l).get("node") for _, l in found), "a sample without node"
assert value(prom, "tierfs_tier_written_bytes_total", mount=plain) == value(every, "tierfs_tier_written_bytes_total", mount=plain)
PY
[ "$(tail -1 "$D/all.om")" = "# EOF" ] || fail "OpenMetrics output does not end with # EOF"
grep -q '^# EOF' "$D/all.prom" && fail "Prometheus 0.0.4 output has # EOF"
ls "$D"/all.prom.* 2>/dev/null && fail "--output left its temporary file"

# Usage errors: one line, status 2.
for args in "--all" "--openmetrics" "--openmetrics --all $D" "--json --openmetrics $D" "--output $D/x $D"; do
  # shellcheck disable=SC2086
  out=$("$TIERFS_BIN" stats $args 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] ||
    fail "stats $args: exit $rc, not 2 with one line: $out"
done
out=$("$TIERFS_BIN" stats --openmetrics --node-config "$D/missing.toml" "$plain" 2>&1) &&
  fail "a missing --node-config was accepted"
[ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] || fail "missing --node-config: not one line: $out"

[ "$failures" -eq 0 ] && echo "stats_openmetrics: ok"
exit $((failures > 0))
