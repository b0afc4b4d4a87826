#!/usr/bin/env bash
# tierfs stats --openmetrics / --prometheus on real mounts: a plain mount with
# traffic (the built-in default; on the kernel path its used bytes come from
# the backing tmpfs and it has no traffic series) and
# one pinned to the server path (traffic counted by the server), a job mount (slurm_job_id label) and a mount whose server was
# killed (tierfs_up 0 while the others still report), both formats parsed by
# prometheus_client (the OpenMetrics parser is strict), --output written
# whole, and the usage errors. Then the textfile-collector wiring as a site
# runs it: the command of examples/systemd/tierfs-metrics.service writes into
# a textfile directory, Debian's prometheus-node-exporter (started here on a
# free loopback port, stopped at the end) reads it, and an HTTP GET of its
# /metrics shows the tierfs series. Needs root, /dev/fuse,
# python3-prometheus-client and prometheus-node-exporter (scripts/setup.sh).
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
exporter_pid=""
# A quote, a backslash and a space in the path: label values must be escaped.
plain="$D/a \"q\\b"
finish() {
  [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null && wait "$exporter_pid" 2>/dev/null
  "$TIERFS_BIN" job --node-config "$D/node.toml" stop --job-id 4242 >/dev/null 2>&1
  umount "$plain" 2>/dev/null
  umount "$D/served" 2>/dev/null
  umount -l "$D/dead" 2>/dev/null
  [ -n "$killed_pid" ] && "$TIERFS_BIN" cleanup "$D/dead" >/dev/null 2>&1
  rm -rf "$D"
}
trap finish EXIT
mkdir -p "$plain" "$D/dead" "$D/scratch" "$D/served"
cat >"$D/node.toml" <<TOML
[job]
base = "$D/scratch"
state_dir = "$D/run"
default_size = "32MiB"
stop_timeout = 2
TOML
metrics() { "$TIERFS_BIN" stats --node-config "$D/node.toml" "$@"; }

"$TIERFS_BIN" mount "$plain" || { echo "FAIL: mount" >&2; exit 1; }
printf '[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "32MiB"\ndata_path = "server"\n' >"$D/served.toml"
"$TIERFS_BIN" mount --config "$D/served.toml" "$D/served" || { echo "FAIL: mount served" >&2; exit 1; }
for m in "$plain" "$D/served"; do
  head -c 3M /dev/urandom >"$m/a"
  cat "$m/a" >/dev/null
done
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
import os, sys
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
served = f"{d}/served"
def has(found, name, **labels):
    try:
        value(found, name, **labels)
        return True
    except SystemExit:
        return False
assert value(one, "tierfs_up", mount=plain) == 1
assert value(one, "tierfs_mover_state", mount=plain, state="off") == 1
# The built-in default: the kernel path with a libfuse that has passthrough.
kernel = value(one, "tierfs_tier_kernel_path", mount=plain) == 1
assert kernel or os.environ.get("TIERFS_LIBFUSE_VERSION") != "3.18", "the default mount is not on the kernel path"
assert value(one, "tierfs_tier_used_bytes", mount=plain) >= 3 << 20
assert value(one, "tierfs_region_used_bytes", mount=plain) >= 3 << 20
if kernel:
    # The kernel moved the bytes: no traffic series, not zeros.
    for name in ("tierfs_tier_written_bytes_total", "tierfs_region_read_bytes_total"):
        assert not has(one, name, mount=plain), name
else:
    assert value(one, "tierfs_tier_written_bytes_total", mount=plain) >= 3 << 20
# The server path: traffic counted by the server.
assert value(every, "tierfs_tier_kernel_path", mount=served) == 0
assert value(every, "tierfs_tier_written_bytes_total", mount=served) >= 3 << 20
assert value(every, "tierfs_region_read_bytes_total", mount=served) > 0
assert value(every, "tierfs_tier_used_bytes", mount=served) >= 3 << 20
assert value(every, "tierfs_operations_total", mount=served, op="write") > 0
# Other mounts of the node (other tests) may be listed too.
assert value(every, "tierfs_mounts") >= 3, value(every, "tierfs_mounts")
assert value(every, "tierfs_up", mount=f"{d}/dead") == 0
assert value(every, "tierfs_up", mount=f"{d}/scratch/4242", slurm_job_id="4242") == 1
assert value(every, "tierfs_tier_capacity_bytes", mount=f"{d}/scratch/4242", slurm_job_id="4242") > 0
for found in (one, every, prom):
    assert all(dict(l).get("node") for _, l in found), "a sample without node"
assert value(prom, "tierfs_tier_written_bytes_total", mount=served) == value(every, "tierfs_tier_written_bytes_total", mount=served)
assert value(prom, "tierfs_tier_used_bytes", mount=plain) == value(every, "tierfs_tier_used_bytes", mount=plain)
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

# The timer's unit, its command pointed at a directory of this test's.
exporter=/usr/bin/prometheus-node-exporter
[ -x "$exporter" ] || { echo "FAIL: no $exporter (scripts/setup.sh installs prometheus-node-exporter)" >&2; exit 1; }
unit="$TIERFS_SOURCE_ROOT/examples/systemd/tierfs-metrics.service.in"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ "$exec_start" == "@BINDIR@/tierfs "*" /var/lib/prometheus/node-exporter/tierfs.prom" ]] ||
  fail "unexpected ExecStart in $unit: $exec_start"
textfile="$D/textfile"
mkdir -p "$textfile"
exec_start=${exec_start//@BINDIR@\/tierfs/$TIERFS_BIN}
exec_start=${exec_start//\/var\/lib\/prometheus\/node-exporter/$textfile}
# This test's job records; the unit reads /etc/tierfs/node.toml's.
exec_start+=" --node-config $D/node.toml"
# shellcheck disable=SC2086
$exec_start 2>/dev/null || fail "the unit's command: $exec_start"
first_inode=$(stat -c %i "$textfile/tierfs.prom")
# shellcheck disable=SC2086
$exec_start 2>/dev/null || fail "the unit's command, again"
# A new file renamed over the old one: a scrape never reads a half-written file.
[ "$(stat -c %i "$textfile/tierfs.prom")" != "$first_inode" ] || fail "tierfs.prom was rewritten in place"
[ "$(ls "$textfile")" = tierfs.prom ] || fail "the textfile directory holds more than tierfs.prom: $(ls "$textfile")"
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$exporter" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$textfile" >"$D/exporter.log" 2>&1 &
exporter_pid=$!
PYTHONPATH="$here/../support" $py - "$port" "$plain" "$D" <<'PY' || fail "node_exporter /metrics: $(tail -3 "$D/exporter.log")"
import sys
from prometheus_client.parser import text_string_to_metric_families as prometheus
from node_exporter import scrape
port, plain, d = sys.argv[1:]
text = scrape(port)
samples = [s for f in prometheus(text) for s in f.samples]
def find(name, **labels):
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
assert find("node_textfile_scrape_error", ) and find("node_textfile_scrape_error")[0].value == 0, \
    [l for l in text.splitlines() if "textfile" in l]
assert find("tierfs_up", mount=plain)[0].value == 1
assert find("tierfs_up", mount=f"{d}/dead")[0].value == 0
assert find("tierfs_up", mount=f"{d}/scratch/4242", slurm_job_id="4242")[0].value == 1
assert find("tierfs_tier_used_bytes", mount=plain)[0].value >= 3 << 20
assert find("tierfs_tier_written_bytes_total", mount=f"{d}/served")[0].value >= 3 << 20
assert find("tierfs_operations_total", mount=f"{d}/served", op="write")[0].value > 0
print(f"node_exporter serves {sum(s.name.startswith('tierfs_') for s in samples)} tierfs samples")
PY

[ "$failures" -eq 0 ] && echo "stats_openmetrics: ok"
exit $((failures > 0))
