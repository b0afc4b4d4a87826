#!/usr/bin/env bash
# tierfs stage on the command line: the progress bar on a terminal (under
# script(1)) and none otherwise, the JSON report, and the exit statuses:
# 0 copied, 1 a checksum mismatch, 2 a bad manifest, 3 interrupted (SIGINT),
# after which a second run resumes and completes the copy.
set -uo pipefail
: "${TIERFS_BIN:?}"
command -v script >/dev/null || { echo "SKIP: needs script(1) (util-linux)"; exit 77; }
D=$(mktemp -d /tmp/tierfs-stage-cli.XXXXXX)
trap 'rm -rf "$D"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
T="$TIERFS_BIN"

mkdir "$D/src"
head -c 20000000 /dev/urandom >"$D/src/a"
echo small >"$D/src/b"

# A terminal gets the bar; a pipe does not.
script -qec "$T stage in $D/src $D/tty-dst" /dev/null >"$D/tty.out" 2>&1 || fail "stage under script failed: $(cat "$D/tty.out")"
grep -q '\[#*\] 100%' "$D/tty.out" || fail "no progress bar on a terminal: $(cat "$D/tty.out")"
"$T" stage in "$D/src" "$D/pipe-dst" 2>"$D/pipe.err" >/dev/null || fail "stage to a pipe failed"
grep -q '%' "$D/pipe.err" && fail "a progress bar on a pipe: $(cat "$D/pipe.err")"
cmp -s "$D/src/a" "$D/pipe-dst/a" || fail "the copy differs"

# The JSON report.
"$T" stage out --json "$D/src/a" "$D/json-dst" >"$D/report.json" || fail "stage --json failed"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] and r["entries"][0]["files_copied"]==1 and len(r["entries"][0]["xxh3"])==16, r' "$D/report.json" ||
  fail "bad report: $(cat "$D/report.json")"
sum=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["entries"][0]["xxh3"])' "$D/report.json")

# Manifests: the right checksum passes, a wrong one fails with status 1, a bad manifest is 2.
printf '[[copy]]\nsource = "src/a"\ndestination = "m-dst/a"\nxxh3 = "%s"\n' "$sum" >"$D/good.toml"
"$T" stage in -m "$D/good.toml" >/dev/null 2>&1 || fail "a manifest with the right xxh3 failed"
printf '[[copy]]\nsource = "src/a"\ndestination = "m-dst/wrong"\nxxh3 = "0000000000000000"\n' >"$D/wrong.toml"
"$T" stage in -m "$D/wrong.toml" >/dev/null 2>"$D/wrong.err"
[ $? -eq 1 ] || fail "a wrong xxh3 did not exit 1"
grep -q "the manifest says 0000000000000000" "$D/wrong.err" || fail "no mismatch line: $(cat "$D/wrong.err")"
[ -e "$D/m-dst/wrong" ] && fail "a mismatched copy was left"
printf '[[copy]]\nsource = "src/a"\n' >"$D/bad.toml"
"$T" stage in -m "$D/bad.toml" >/dev/null 2>"$D/bad.err"
[ $? -eq 2 ] || fail "a bad manifest did not exit 2"
[ "$(grep -c . "$D/bad.err")" -eq 1 ] || fail "bad manifest: not one line: $(cat "$D/bad.err")"

# SIGINT mid-copy: exit 3, a part is left; the next run resumes it.
head -c 800000000 /dev/urandom >"$D/big"  # not sparse
"$T" stage in --no-verify "$D/big" "$D/big-dst" >/dev/null 2>"$D/int.err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$D/big-dst.tierfs-part" ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
status=$?
if [ "$status" -eq 3 ]; then
  [ -e "$D/big-dst.tierfs-part" ] || fail "interrupted, but no part left"
  "$T" stage in --json "$D/big" "$D/big-dst" >"$D/resume.json" || fail "the resumed copy failed"
  grep -q '"files_resumed": 1' "$D/resume.json" || fail "not resumed: $(cat "$D/resume.json")"
  cmp -s "$D/big" "$D/big-dst" || fail "the resumed copy differs"
elif [ "$status" -eq 0 ]; then
  echo "note: the copy finished before SIGINT arrived; nothing to resume"
  cmp -s "$D/big" "$D/big-dst" || fail "the copy differs"
else
  fail "SIGINT: exit $status, not 3: $(cat "$D/int.err")"
fi

[ "$failures" -eq 0 ] || exit 1
echo "PASS: stage command line"
