#!/usr/bin/env bash
# The Debian package as a site uses it: built from a clean clone of the
# source's HEAD with dpkg-buildpackage, checked by lintian (no error, no
# warning), installed with `apt-get install ./tierfs_*.deb` into a clean
# Debian 12 root made by mmdebstrap (the archive is the one this machine's
# apt configuration names; that root, with Slurm and node_exporter but
# without tierfs, is cached as a tarball keyed by its package list), and there: `tierfs mount` on the default
# configuration, the fstab form, one Slurm job through the installed scripts
# (a private cluster on free ports) during which a removal is refused and a
# reinstall (the upgrade path) leaves the job's scratch live, the metrics unit
# feeding node_exporter's textfile collector and /metrics serving the tierfs
# series, then a purge with a mount still live, after which nothing is left.
# Runs in a mount namespace of its own, so every mount it makes dies with it.
# Needs root, /dev/fuse, git, dpkg-buildpackage, lintian and mmdebstrap.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
for tool in git dpkg-buildpackage lintian mmdebstrap unshare findmnt; do
  command -v "$tool" >/dev/null || tierfs_require "needs $tool (scripts/setup.sh installs it)"
done
py=/usr/bin/python3
$py -c 'import prometheus_client' 2>/dev/null ||
  tierfs_require "needs python3-prometheus-client (scripts/setup.sh installs it)"
source_root=${TIERFS_SOURCE_ROOT:?}

if [ -z "${TIERFS_PACKAGE_NAMESPACE:-}" ]; then
  exec env TIERFS_PACKAGE_NAMESPACE=1 unshare --mount --propagation private -- "$0" "$@"
fi
# The namespace starts as a copy of the machine's mounts, and a copy keeps a
# mount alive after its owner unmounts it: a FUSE server (a suite's, another
# user's) would not see its unmount until this test ends, a loop device would
# stay claimed, a kernel-path store keep its memory. None of them is this
# test's: they are dropped here, in this namespace only, except a mount that
# holds a path the test uses.
keep=$(for p in "$source_root" /var/tmp /var/cache "${TMPDIR:-/tmp}"; do findmnt -n -o TARGET -T "$p"; done)
while IFS= read -r -d '' m; do
  grep -qxF -- "$m" <<<"$keep" || umount -l -- "$m" 2>/dev/null
done < <($py - <<'PY'
import re
unescape = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
drop = []
for line in open("/proc/self/mountinfo"):
    before, after = line.split(" - ", 1)
    point, (fstype, source) = unescape(before.split()[4]), after.split()[:2]
    if fstype.split(".")[0] in ("fuse", "fuseblk") or source.startswith("/dev/loop") \
            or point == "/run/tierfs" or point.startswith("/run/tierfs/"):
        drop.append(point)
for point in sorted(drop, reverse=True):
    print(point, end="\0")
PY
)

# A fixed place, so ccache finds the last run's objects; the cache keeps the
# root's tarball and the downloaded .debs between runs (the root itself is
# unpacked anew each time).
W=/var/tmp/tierfs-package
cache=/var/cache/tierfs-package
ROOT=$W/root
mkdir -p "$W" "$cache/apt"
exec 9>"$W.lock"
flock 9
# The build, lintian and mmdebstrap are most of the test's CPU and wait for
# nothing: at the lowest priority, so that CI can run this beside its suites
# (scripts/test.sh). What runs in the root (servers, Slurm) keeps the normal
# priority, so that its waits are not a busy machine's starvation.
background=(nice -n 19)
# meson test starts each test in a session, and so a scheduler autogroup, of
# its own (kernel.sched_autogroup_enabled), which gets as much CPU as the
# suites' whatever nice its tasks have: the autogroup's nice is what puts the
# build below them, and is put back for the root. Only when this script leads
# its session, so that a shell that runs it is left alone.
session_nice() {
  [ "$(ps -o sid= -p $$ | tr -d ' ')" != $$ ] || echo "$1" >/proc/self/autogroup 2>/dev/null || true
}
session_nice 19
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo "package: $* (${SECONDS}s)"; }
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive SLURM_CONF=/srv/slurm/slurm.conf "$@"; }

root_mounts() {  # mount points under $ROOT, deepest first
  awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
# Processes whose root is the chroot: ours, all of them (servers, Slurm, node_exporter).
root_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
  done
}
finish() {
  local pid m
  # The root goes; its daemons' logs stay beside the test's.
  [ -d "$ROOT/srv/slurm" ] && cp "$ROOT"/srv/slurm/*.log "$ROOT"/srv/slurm/munge/*.log "$W/" 2>/dev/null
  for pid in $(root_pids); do kill "$pid" 2>/dev/null; done
  sleep 1
  for pid in $(root_pids); do kill -9 "$pid" 2>/dev/null; done
  for m in $(root_mounts); do umount "$m" 2>/dev/null || umount -l "$m"; done
  # Never remove through a mount: only when nothing is mounted under the root.
  [ -z "$(root_mounts)" ] && rm -rf --one-file-system "$ROOT"
}
trap finish EXIT
finish

# 1. Build from a clean clone, as a site would.
if [ -n "${TIERFS_PACKAGE_DEB_DIR:-}" ]; then
  # A rerun on packages already built (a developer's loop; CI always builds).
  step "packages from $TIERFS_PACKAGE_DEB_DIR"
  rm -f "$W"/tierfs_* "$W"/tierfs-dbgsym_*
  cp "$TIERFS_PACKAGE_DEB_DIR"/tierfs_*_amd64.* "$W/" ||
    { echo "FAIL: no packages in $TIERFS_PACKAGE_DEB_DIR" >&2; exit 1; }
  version=$(dpkg-deb -f "$W"/tierfs_*_amd64.deb Version)
else
  step "clone and dpkg-buildpackage"
  rm -rf "$W/src" "$W"/tierfs_* "$W"/tierfs-dbgsym_*
  git clone -q "$source_root" "$W/src" || { echo "FAIL: git clone $source_root" >&2; exit 1; }
  version=$(cd "$W/src" && dpkg-parsechangelog -S Version)
  # debhelper (compat 13) gives the build a HOME of its own in the tree, where
  # ccache would start an empty cache each time: the machine's is named.
  cache_env=()
  command -v ccache >/dev/null &&
    cache_env=(CCACHE_DIR="$(ccache -k cache_dir)" CCACHE_MAXSIZE="$(ccache -k max_size)" CCACHE_BASEDIR="$W/src")
  # Without debug information and so without the -dbgsym package a site's
  # build makes (debian/rules is unchanged): no step here reads either, -g
  # was a quarter of the compiler's CPU time (80 against 60 CPU-s on a
  # sample of 11 of the 81 sources), and the dbgsym's dwz, objcopy and xz of
  # 28 MB another 35 CPU-s, on a CI run where every CPU-second counts. The
  # binary's code is the same (-g changes no instruction) and lintian checks
  # it as before.
  if ! (cd "$W/src" && env DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" \
    DEB_CFLAGS_STRIP=-g DEB_CXXFLAGS_STRIP=-g "${cache_env[@]}" \
    "${background[@]}" dpkg-buildpackage -us -uc -b >"$W/build.log" 2>&1); then
    tail -30 "$W/build.log" >&2
    echo "FAIL: dpkg-buildpackage (log: $W/build.log)" >&2
    exit 1
  fi
fi
deb=$W/tierfs_${version}_amd64.deb
[ -f "$deb" ] || { echo "FAIL: no $deb" >&2; exit 1; }
step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# 2. lintian: no error and no warning (overrides carry their reason), and no
# override that nothing needs any more (an info tag, hence -I).
"${background[@]}" lintian -I --fail-on error,warning "$W/tierfs_${version}_amd64.changes" >"$W/lintian.log" 2>&1 ||
  fail "lintian: $(cat "$W/lintian.log")"
grep -q unused-override "$W/lintian.log" && fail "lintian: $(grep unused-override "$W/lintian.log")"
step "lintian: $(grep -c . "$W/lintian.log") line(s)"

# 3. A clean Debian 12 root from this machine's own apt archives: what the
# test itself runs (Slurm, munge, node_exporter), not tierfs's dependencies,
# which apt-get install ./tierfs_*.deb resolves from the archive below.
. /etc/os-release
targets=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' "Created-By: Packages" |
  awk -v r="$VERSION_CODENAME" '$2 == r || index($2, r "-") == 1' | sort -u)
[ -n "$targets" ] || { echo "FAIL: no apt repository for $VERSION_CODENAME in this machine's apt configuration" >&2; exit 1; }
mirrors=()
while read -r uri release component; do mirrors+=("deb $uri $release $component"); done <<<"$targets"
include=slurmd,slurmctld,slurm-client,munge,prometheus-node-exporter
tarball=$cache/root-$VERSION_CODENAME-$(printf '%s\n' "$include" "${mirrors[@]}" | sha256sum | cut -c1-16).tar
if [ ! -f "$tarball" ]; then
  step "mmdebstrap $VERSION_CODENAME (cached as $tarball)"
  # -r: a run before --format=tar left directories under these names.
  rm -rf "$cache"/root-*.tar "$tarball.tmp"
  # --format=tar: mmdebstrap picks the format from the name, and ".tmp" would make a directory.
  "${background[@]}" mmdebstrap --variant=apt --format=tar --include="$include" --skip=cleanup/apt/lists \
    "$VERSION_CODENAME" "$tarball.tmp" "${mirrors[@]}" >"$W/mmdebstrap.log" 2>&1 ||
    { rm -rf "$tarball.tmp"; tail -20 "$W/mmdebstrap.log" >&2; echo "FAIL: mmdebstrap" >&2; exit 1; }
  mv "$tarball.tmp" "$tarball"
fi
session_nice 0
step "unpack the root"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$tarball" || { echo "FAIL: unpack $tarball" >&2; exit 1; }
cp /etc/hosts /etc/resolv.conf "$ROOT/etc/"
# No daemon starts from a maintainer script in the root (munge, slurmd, node_exporter).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOT/proc"
# Recursive: slurmd needs /sys/fs/cgroup, apt /dev/pts.
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
# Its own /dev/shm: the root's numa: regions never meet anyone else's.
mount -t tmpfs -o mode=1777,size=8g tmpfs "$ROOT/dev/shm"
mount --bind "$cache/apt" "$ROOT/var/cache/apt/archives"
cp "$deb" "$ROOT/tmp/"

# 4. Install as a site does.
step "apt-get install ./$(basename "$deb")"
# The cached root's package lists may be older than the archive.
in_root apt-get -qq update >"$W/apt.log" 2>&1 || fail "apt-get update in the root: $(tail -5 "$W/apt.log")"
in_root sh -c "cd /tmp && apt-get install -y -q ./$(basename "$deb")" >>"$W/apt.log" 2>&1 ||
  { tail -20 "$W/apt.log" >&2; echo "FAIL: apt-get install ./$(basename "$deb")" >&2; exit 1; }
for f in /usr/bin/tierfs /usr/share/man/man1/tierfs.1.gz /usr/share/bash-completion/completions/tierfs \
  /lib/systemd/system/tierfs@.service /lib/systemd/system/tierfs-metrics.service \
  /lib/systemd/system/tierfs-metrics.timer /usr/share/tierfs/slurm/prolog.sh \
  /usr/share/tierfs/slurm/epilog.sh /usr/share/tierfs/slurm/task_prolog.sh \
  /usr/share/tierfs/examples/single-node-dram.toml /etc/tierfs/node.toml /etc/tierfs/slurm.env; do
  [ -e "$ROOT$f" ] || fail "not installed: $f"
done
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' tierfs)
for f in /etc/tierfs/node.toml /etc/tierfs/slurm.env; do
  grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
in_root tierfs --version | grep -q 'libfuse 3\.18' || fail "tierfs --version: $(in_root tierfs --version)"
in_root ldd /usr/bin/tierfs | grep -q libfuse && fail "libfuse is linked dynamically"

# 5. tierfs mount on the default configuration; it stays mounted for the purge.
step "tierfs mount, fstab"
mkdir -p "$ROOT/mnt/default" "$ROOT/mnt/fstab" "$ROOT/scratch"
in_root tierfs mount /mnt/default || fail "tierfs mount /mnt/default"
head -c 1M /dev/urandom >"$W/data"
cp "$W/data" "$ROOT/mnt/default/data" && cmp -s "$W/data" "$ROOT/mnt/default/data" ||
  fail "write and read back on /mnt/default"
# The fstab form: mount(8) -> fuse3's mount.fuse3 -> tierfs.
echo "scratch /mnt/fstab fuse.tierfs mode=1777,noauto 0 0" >>"$ROOT/etc/fstab"
if in_root mount /mnt/fstab; then
  [ "$(findmnt -n -o FSTYPE "$ROOT/mnt/fstab")" = fuse.tierfs ] || fail "fstab: /mnt/fstab is not fuse.tierfs"
  [ "$(stat -c %a "$ROOT/mnt/fstab")" = 1777 ] || fail "fstab: mode=1777 not applied"
  cp "$W/data" "$ROOT/mnt/fstab/data" && cmp -s "$W/data" "$ROOT/mnt/fstab/data" || fail "fstab: write"
  in_root umount /mnt/fstab || fail "umount /mnt/fstab"
else
  fail "mount /mnt/fstab"
fi

# 6. One Slurm job through the installed scripts. slurm.conf is the site's
# file: written here with the lines docs/operations.md gives, on free ports.
step "Slurm job"
. "$here/../slurm/cluster.sh"
# slurmctld, slurmd and node_exporter, at random in 20000-39999.
port_base=$(free_ports 3 $(for _ in $(seq 1 50); do echo $((20000 + RANDOM % 20000)); done)) ||
  { echo "FAIL: no three free ports" >&2; exit 1; }
mkdir -p "$ROOT/srv/slurm/munge" "$ROOT/srv/slurm/state" "$ROOT/srv/slurm/spool"
cluster_conf "$ROOT/srv/slurm" /usr/share/tierfs/slurm 11264 "$port_base"
sed -i "s|$ROOT||g" "$ROOT/srv/slurm/slurm.conf"
chmod 0700 "$ROOT/srv/slurm/munge"
head -c 1024 /dev/urandom >"$ROOT/srv/slurm/munge/munge.key"
chmod 0400 "$ROOT/srv/slurm/munge/munge.key"
in_root munged --force --key-file=/srv/slurm/munge/munge.key --socket=/srv/slurm/munge/munge.socket \
  --pid-file=/srv/slurm/munge/munged.pid --log-file=/srv/slurm/munge/munged.log \
  --seed-file=/srv/slurm/munge/munged.seed || fail "munged"
in_root slurmctld -f /srv/slurm/slurm.conf -i || fail "slurmctld"
in_root slurmd -f /srv/slurm/slurm.conf || fail "slurmd: $(tail -5 "$ROOT/srv/slurm/slurmd.log" 2>&1)"
for _ in $(seq 1 150); do
  in_root sinfo -h -o '%T' 2>/dev/null | grep -qx idle && break
  sleep 0.2
done
cat >"$ROOT/tmp/job.sh" <<'JOB'
#!/bin/sh
echo "scratch=$TIERFS_SCRATCH"
head -c 2M /dev/zero >"$TIERFS_SCRATCH/out" && echo written
i=0
while [ ! -e /tmp/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
JOB
chmod 0755 "$ROOT/tmp/job.sh"
# Submitted by root for nobody, as the Slurm suite does (munge's socket is root's).
job=$(in_root sbatch --parsable --uid=nobody --gid=nogroup --tmp=64M --chdir=/tmp \
  --output=/tmp/job.out /tmp/job.sh)
[ -n "$job" ] || fail "sbatch"
for _ in $(seq 1 300); do
  [ "$(findmnt -n -o FSTYPE "$ROOT/scratch/$job" 2>/dev/null)" = fuse.tierfs ] &&
    [ -e "$ROOT/scratch/$job/out" ] && break
  sleep 0.2
done
if [ ! -e "$ROOT/scratch/$job/out" ]; then
  fail "job $job: no scratch with its file: $(cat "$ROOT/tmp/job.out" 2>&1)"
  in_root scontrol show job "$job" | grep -E 'Comment|JobState' >&2
  ls -la "$ROOT/run/tierfs" >&2
  cat "$ROOT/run/tierfs/job-$job".* >&2
fi

# 7. While the job runs: its series carry slurm_job_id; removal is refused;
# a reinstall (what an upgrade runs) keeps the job's scratch live.
step "metrics, refused removal, reinstall during job $job"
in_root tierfs stats --openmetrics --all >"$W/all.om" || fail "tierfs stats --openmetrics --all"
exec_start=$(sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/tierfs-metrics.service")
[ -d "$ROOT/var/lib/prometheus/node-exporter" ] || fail "prometheus-node-exporter made no textfile directory"
# shellcheck disable=SC2086
in_root $exec_start || fail "the metrics unit's command: $exec_start"
$py - "$W/all.om" "$ROOT/var/lib/prometheus/node-exporter/tierfs.prom" "$job" <<'PY' || fail "metrics parsed"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus
om, prom, job = sys.argv[1:]
for families in (list(openmetrics(open(om).read())), list(prometheus(open(prom).read()))):
    up = {s.labels["mount"]: s for f in families for s in f.samples if s.name == "tierfs_up"}
    assert up["/mnt/default"].value == 1, up
    assert up[f"/scratch/{job}"].labels.get("slurm_job_id") == job, up
PY
exporter_port=$((port_base + 2))
chroot "$ROOT" /usr/bin/prometheus-node-exporter --web.listen-address="127.0.0.1:$exporter_port" \
  --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory=/var/lib/prometheus/node-exporter >"$W/exporter.log" 2>&1 &
PYTHONPATH="$here/../support" $py - "$exporter_port" "$job" <<'PY' || fail "node_exporter /metrics: $(tail -3 "$W/exporter.log")"
import sys
from node_exporter import scrape
port, job = sys.argv[1:]
lines = scrape(port).splitlines()
assert any(l.startswith('tierfs_up{') and f'slurm_job_id="{job}"' in l for l in lines), "no job series"
assert any(l.startswith('tierfs_tier_used_bytes{') for l in lines), "no tier series"
assert "node_textfile_scrape_error 0" in lines, [l for l in lines if "textfile" in l]
print(f"package: node_exporter serves {sum(l.startswith('tierfs_') for l in lines)} tierfs samples")
PY
if in_root apt-get remove -y -q tierfs >"$W/remove.log" 2>&1; then
  fail "removal during job $job was not refused"
else
  grep -q "Slurm job $job has live scratch" "$W/remove.log" || fail "refusal without the job: $(tail -5 "$W/remove.log")"
fi
in_root sh -c "cd /tmp && apt-get install -y -q --reinstall ./$(basename "$deb")" >"$W/reinstall.log" 2>&1 ||
  fail "reinstall: $(tail -5 "$W/reinstall.log")"
grep -q "live mount(s) keep running" "$W/reinstall.log" || fail "reinstall did not name the live mounts"
[ "$(findmnt -n -o FSTYPE "$ROOT/scratch/$job")" = fuse.tierfs ] && cmp -s "$ROOT/scratch/$job/out" <(head -c 2M /dev/zero) ||
  fail "job $job lost its scratch across the reinstall"
touch "$ROOT/tmp/release"
for _ in $(seq 1 300); do
  [ -z "$(in_root squeue -h -j "$job" 2>/dev/null)" ] && [ ! -e "$ROOT/scratch/$job" ] && break
  sleep 0.2
done
grep -qx "scratch=/scratch/$job" "$ROOT/tmp/job.out" && grep -qx written "$ROOT/tmp/job.out" ||
  fail "job output: $(cat "$ROOT/tmp/job.out")"
[ -e "$ROOT/scratch/$job" ] && fail "the epilog left /scratch/$job"
in_root sinfo -h -o '%T' | grep -qx idle || fail "node not idle after the job: $(in_root sinfo -h -o '%T %E')"
cluster_stop "$ROOT/srv/slurm"

# 8. Purge with /mnt/default still mounted: nothing of tierfs may be left.
step "purge"
in_root apt-get purge -y -q tierfs >"$W/purge.log" 2>&1 || fail "purge: $(tail -5 "$W/purge.log")"
grep -q "unmounted /mnt/default" "$W/purge.log" || fail "purge did not unmount /mnt/default"
# Only the root's: this namespace holds copies of other tierfs mounts of the machine.
left=$(awk -v r="$ROOT" '(index($5, r "/") == 1) && / - fuse.tierfs / { print $5 }' /proc/self/mountinfo)
[ -n "$left" ] && fail "tierfs mounts left: $left"
for pid in $(root_pids); do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tierfs ] && fail "a tierfs process is left: $pid"
done
in_root dpkg-query -W -f='${Status}\n' tierfs 2>/dev/null | grep -q installed && fail "tierfs still installed"
for f in /usr/bin/tierfs /usr/share/tierfs /etc/tierfs /run/tierfs /lib/systemd/system/tierfs@.service \
  /var/lib/prometheus/node-exporter/tierfs.prom; do
  [ -e "$ROOT$f" ] && fail "left after purge: $f"
done
ls "$ROOT/dev/shm" | grep -q tierfs && fail "shared memory left: $(ls "$ROOT/dev/shm")"
step "done, $failures failure(s)"
[ "$failures" -eq 0 ] && echo "package_test: ok"
exit $((failures > 0))
