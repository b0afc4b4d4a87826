#!/usr/bin/env python3
"""Crash test of the metadata log (issue 11) and of migrations (issue 14):
random operations against a model of what was acknowledged, kill -9 of the
server at a random moment or at a named point inside a metadata update or a
migration (TIERFS_CRASH_AT), remount, compare with the model, `tierfs check`
clean.

In the layouts with several tiers, moves are mixed in: `tierfs migrate`
(waiting, --async, or left running in the background while the next
operations write to the same file) and user.tierfs.tier; in `file-mover` the
mover demotes and promotes all the time, its copies slowed by its rate limit
so that timer kills and writes land inside them.

What it asserts, per iteration:
- every operation that returned before the kill is there after the remount:
  names, hard links (one inode), sizes, bytes, user.* xattrs, symlink targets;
- the one operation in flight is there whole or not at all, except a write or
  truncate, whose range may hold old or new bytes (never anything else) and
  whose size is the old or the new one;
- a file unlinked while open is gone, its blocks free;
- a move changes no byte, whether it finished, was cut by the kill or never
  ran; every file's extents are in one tier (`tierfs map --json`), the one
  its new data goes to (the tier it left or the one it went to, never both);
- `tierfs check --state-dir` of the dead mount and `tierfs check MOUNTPOINT`
  of the remounted one report nothing (on `file-mover`, while the mover is
  copying).
fsync'd files are a subset of acknowledged ones: a process crash must keep
both (the model counts them; power loss is not something a test here can cut).

Usage: crash_test.py [--iterations N] [--seed S] [--layouts a,b]
(env TIERFS_BIN; CI runs it as the `crash` suite). Each mount of a layout
logs to its own file; a failure copies the last three (and the dead
server's state directory) to $CRASH_KEEP_FAILED/LAYOUT-ITERATION, or to a
new /tmp/tierfs-crash-failed-* directory, and prints where.

Figures (2 shared cores, niced, other builds running): 200 iterations over
the 7 layouts, 120 of them in the 3 with several tiers, take 93-96 s alone
and 115-140 s beside the rest of the suite; a run kills about 120 times at
named points (30-50 of them inside a migration) and 80 times by timer, 30-50
times with a move in flight, with some 1200-1600 moves started. Two deliberate bugs, tried by
hand, fail it within 20 iterations of the tiered layouts: the old blocks
freed (zeroed) before the switch is logged, and the switch logged before the
copy.
"""

import argparse
import errno
import faulthandler
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from tierfs_mount import TierfsMount, MountError, is_mounted  # noqa: E402
sys.path.insert(0, HERE)
from crash_layouts import KERNEL, SHARE, TIERS, layouts  # noqa: E402
from crash_model import (DIRS, FILES, XATTRS, Model, matches,  # noqa: E402
                         matches_either_bytes, observe, rebuild_from)
from crash_moves import MIGRATE_POINTS, Moves, NoEffect, check_tiers, migrate_op  # noqa: E402
from crash_kernel import (KERNEL_MIGRATE_POINTS, KERNEL_ONLY_DROP, check_backing,  # noqa: E402
                          kernel_refusal, leftover_mounts, mmap_write)

CRASH_POINTS = [
    "journal.before_write",  # change made in memory, its frame not yet written
    "journal.torn_write",    # half a frame in the file
    "journal.after_write",   # frame written, reply not sent
    "journal.before_sync",   # fsync: frame written, fdatasync not done
    "write.before_copy",     # new blocks logged, data not yet copied into them
    "free.after_log",        # record that dropped blocks logged, blocks not yet freed
    "checkpoint.before_rename",
    "checkpoint.after_rename",  # new checkpoint in place, journal not yet emptied
]

class Op:
    def __init__(self, kind, apply_model, run, ino=None, what=""):
        self.kind, self.apply_model, self.run, self.ino = kind, apply_model, run, ino
        self.what = what
        self.error = None  # the OSError that a kill cut it with


def random_op(rng, model, mnt, held_fds, moves=None):
    """One operation valid on `model`: its effect on the model and the syscalls doing it."""
    present = sorted(model.names)
    absent = [p for p in FILES if p not in model.names]
    choices = ["create"] * 3 + ["write"] * 6 + ["truncate", "rename", "unlink", "link",
                                                "setxattr", "removexattr", "fsync", "open_unlink",
                                                "write_held"]
    if moves and moves.tiers:
        choices += ["migrate"] * 3
    if moves and moves.kernel:
        choices += ["mmap_write"] * 2
    while True:
        kind = rng.choice(choices)
        focus = None
        if moves and moves.focus:
            # Right after a background move: writes to its file, to meet the copy.
            focus, left = moves.focus
            moves.focus = (focus, left - 1) if left > 1 else None
            if focus in model.names:
                kind = "write"
            else:
                focus = None
        if kind == "create" and absent:
            path = rng.choice(absent)

            def run():
                os.close(os.open(f"{mnt}/{path}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return Op(kind, lambda m: m.new_inode(path), run)
        if not present:
            continue
        path = focus if focus else rng.choice(present)
        ino = model.names[path]
        if kind == "migrate":
            apply_model, run, how = migrate_op(rng, moves, mnt, path)
            return Op(kind, apply_model, run, ino, how)
        if kind == "mmap_write":
            op = mmap_write(rng, model, mnt, path, ino)
            if op is None:
                continue
            return Op("write", op[0], op[1], ino, "mmap_write")
        if kind == "write":
            off = rng.randrange(0, 192 * 1024)
            if rng.random() < 0.3:
                off = len(model.data[ino])  # append
            buf = rng.randbytes(rng.randrange(1, 96 * 1024))

            def apply_write(m):
                d = m.data[m.names[path]]
                if len(d) < off + len(buf):
                    d.extend(bytes(off + len(buf) - len(d)))
                d[off:off + len(buf)] = buf

            def run():
                fd = os.open(f"{mnt}/{path}", os.O_WRONLY)
                try:
                    if os.pwrite(fd, buf, off) != len(buf):
                        raise OSError(errno.EIO, "short write")
                finally:
                    os.close(fd)
            return Op(kind, apply_write, run, ino)
        if kind == "truncate":
            size = rng.choice([0, rng.randrange(0, 256 * 1024), len(model.data[ino]) // 2 + 1])

            def apply_truncate(m):
                d = m.data[m.names[path]]
                if size < len(d):
                    del d[size:]
                else:
                    d.extend(bytes(size - len(d)))
            return Op(kind, apply_truncate, lambda: os.truncate(f"{mnt}/{path}", size), ino)
        if kind == "rename":
            target = rng.choice([p for p in FILES if p != path])

            def apply_rename(m):
                src = m.names[path]
                if m.names.get(target) == src:
                    return  # two names of one file: POSIX says nothing happens
                if target in m.names:
                    m.unlink(target)
                del m.names[path]
                m.names[target] = src
            return Op(kind, apply_rename, lambda: os.rename(f"{mnt}/{path}", f"{mnt}/{target}"))
        if kind == "unlink":
            return Op(kind, lambda m: m.unlink(path), lambda: os.unlink(f"{mnt}/{path}"))
        if kind == "link" and absent:
            target = rng.choice(absent)

            def apply_link(m):
                m.names[target] = m.names[path]
            return Op(kind, apply_link, lambda: os.link(f"{mnt}/{path}", f"{mnt}/{target}"))
        if kind == "setxattr":
            name, value = rng.choice(XATTRS), rng.randbytes(rng.randrange(1, 200))

            def apply_set(m):
                m.xattrs[m.names[path]][name] = value
            return Op(kind, apply_set, lambda: os.setxattr(f"{mnt}/{path}", name, value))
        if kind == "removexattr" and model.xattrs[ino]:
            name = rng.choice(sorted(model.xattrs[ino]))

            def apply_remove(m):
                del m.xattrs[m.names[path]][name]
            return Op(kind, apply_remove, lambda: os.removexattr(f"{mnt}/{path}", name))
        if kind == "fsync":
            def run():
                fd = os.open(f"{mnt}/{path}", os.O_RDWR)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return Op(kind, lambda m: None, run)
        if kind == "open_unlink":
            # Unlinked while open (held until the crash, at most three at a time).
            def run():
                fd = os.open(f"{mnt}/{path}", os.O_RDWR)
                if len(held_fds) >= 3:  # each keeps its blocks until closed
                    os.close(held_fds.pop(0)[0])
                held_fds.append((fd, ino))
                os.unlink(f"{mnt}/{path}")
            return Op(kind, lambda m: m.unlink(path), run)
        if kind == "write_held" and held_fds:
            # A write through a held descriptor: another name of the inode may still show it.
            fd, held_ino = rng.choice(held_fds)
            off, buf = rng.randrange(0, 64 * 1024), rng.randbytes(rng.randrange(1, 64 * 1024))

            def apply_held(m):
                if held_ino in m.data:
                    d = m.data[held_ino]
                    if len(d) < off + len(buf):
                        d.extend(bytes(off + len(buf) - len(d)))
                    d[off:off + len(buf)] = buf

            def run():
                if os.pwrite(fd, buf, off) != len(buf):
                    raise OSError(errno.EIO, "short write")
            return Op("write", apply_held, run, held_ino)


def verify(tierfs, mnt, before, after, in_flight, tiers, kernel_state=None):
    """The remounted mount against the model (module docstring); raises AssertionError.
    Returns what it observed. kernel_state: the state directory of a kernel-path
    layout, whose backing store must hold exactly the files' backing files."""
    seen = observe(mnt)
    if in_flight is None:
        why = matches(before, seen)
    elif in_flight.kind in ("write", "truncate"):
        why = matches_either_bytes(before, after, seen, in_flight.ino)
    else:
        why = matches(before, seen) and matches(after, seen)
    if not why and tiers:
        why = check_tiers(tierfs, mnt, seen[0])
    if not why and kernel_state:
        why = check_backing(mnt, seen[0], kernel_state)
    if why:
        raise AssertionError(why)
    run_check(tierfs, [mnt])
    return seen


def run_check(tierfs, args):
    r = subprocess.run([tierfs, "check", *args], capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip():
        raise AssertionError(f"tierfs check {' '.join(args)}: exit {r.returncode}\n"
                             f"{r.stdout}{r.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=int(os.environ.get("CRASH_ITERATIONS", 200)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CRASH_SEED", time.time())))
    ap.add_argument("--layouts", default="")
    args = ap.parse_args()
    tierfs = os.environ.get("TIERFS_BIN")
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.W_OK):
        reason = "needs root and /dev/fuse"
        if os.environ.get("TIERFS_REQUIRE_PRIVILEGED") == "1":
            print(f"FAIL: {reason} and TIERFS_REQUIRE_PRIVILEGED=1 forbids skipping")
            return 1
        print(f"SKIP: {reason}")
        return 77
    # A fault of this process (a SIGBUS in a mapping) prints where it was.
    faulthandler.enable()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="tierfs-crash-")
    print(f"seed {args.seed}, in {tmp}", flush=True)
    os.makedirs(f"{tmp}/regions")
    help_text = subprocess.run([tierfs, "--help"], capture_output=True, text=True).stdout
    # numa: memory survives its server only with named shared memory (MountState, `cleanup`).
    numa_ok = "cleanup" in help_text
    # The kernel-path layouts run only when named (the `crash_kernel` test).
    wanted = args.layouts.split(",") if args.layouts else []
    kernel_why = None
    if any(n in KERNEL for n in wanted):
        kernel_why = kernel_refusal(tierfs, layouts(tmp, False, True)["kernel-1way"], tmp)
        if kernel_why:
            shutil.rmtree(tmp, ignore_errors=True)
            return skip_kernel(kernel_why)
    all_layouts = layouts(tmp, numa_ok, kernel_why is None)
    if not numa_ok:
        print("numa: layouts left out: this tierfs does not adopt shared memory across servers")
    chosen = wanted or sorted(n for n in all_layouts if n not in KERNEL)
    stats = {"iterations": 0, "crash_points": 0, "timer_kills": 0, "in_flight": 0,
             "migrate_points": 0, "moves_in_flight": 0, "moves": {}, "sigbus": 0}
    failures = 0
    started = time.monotonic()
    shares = [SHARE.get(n, 1) for n in chosen]
    counts = [args.iterations * w // sum(shares) for w in shares]
    for li in range(args.iterations - sum(counts)):
        counts[li % len(counts)] += 1
    try:
        for name, per_layout in zip(chosen, counts):
            failures += run_layout(tierfs, tmp, name, all_layouts[name], per_layout, rng, stats)
        # The last clean unmount of each layout took its backing tmpfs with it.
        left = leftover_mounts(tmp)
        if left:
            print(f"FAIL: mounts left after the clean unmounts: {', '.join(left)}")
            failures += 1
            for point in left:
                subprocess.run(["umount", "-l", point], capture_output=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    moves = ", ".join(f"{n} {k}" for k, n in sorted(stats["moves"].items()))
    print(f"{stats['iterations']} crash iterations ({stats['crash_points']} at named points, "
          f"{stats['migrate_points']} of them inside a migration, "
          f"{stats['timer_kills']} by timer, {stats['in_flight']} with an operation in flight, "
          f"{stats['moves_in_flight']} of them a move), {failures} failures, "
          f"{time.monotonic() - started:.0f} s")
    print(f"moves started: {moves or 'none'}")
    if stats["sigbus"]:
        print(f"mmap writes cut by SIGBUS after the kill: {stats['sigbus']}")
    return 1 if failures else 0


def skip_kernel(why):
    """The kernel-path layouts were asked for and this build or kernel refuses the
    kernel path: a libfuse without passthrough (before 3.16) skips even in CI (a
    property of the build); otherwise a skip that TIERFS_REQUIRE_PRIVILEGED=1 fails."""
    version = os.environ.get("TIERFS_LIBFUSE_VERSION", "")
    old = version and tuple(int(x) for x in version.split(".")[:2]) < (3, 16)
    if not old and os.environ.get("TIERFS_REQUIRE_PRIVILEGED") == "1":
        print(f"FAIL: kernel path unavailable ({why}) and TIERFS_REQUIRE_PRIVILEGED=1")
        return 1
    print(f"SKIP: kernel path unavailable: {why}")
    return 77


class ServerLogs:
    """One server log per mount of a layout (`log_file=`, which appends): a
    failure names the log of the server it saw, the killed one's and the one
    that remounted, not one file that every remount of the layout went on."""

    def __init__(self, log):
        self.base, self.count = log, 0

    def next(self):
        self.count += 1
        return self.current()

    def current(self):
        return f"{self.base}.server.{self.count}"

    def recent(self, n=2):
        return [f"{self.base}.server.{i}" for i in range(max(1, self.count - n + 1), self.count + 1)]


def keep_logs(name, it, logs, state=None, config=None):
    """Copies the layout's last server logs (and the dead server's state) out of
    the test's directory, which is removed at the end; prints where they are
    and the last lines of each."""
    keep = os.environ.get("CRASH_KEEP_FAILED") or tempfile.mkdtemp(prefix="tierfs-crash-failed-")
    where = f"{keep}/{name}-{it}"
    os.makedirs(where, exist_ok=True)
    for path in logs.recent(3):
        if os.path.exists(path):
            shutil.copy(path, where)
            with open(path, errors="replace") as f:
                tail = f.read().splitlines()[-4:]
            print(f"  server log {os.path.basename(path)}: " + " | ".join(tail))
    if state and os.path.isdir(f"{state}.dead"):
        shutil.copytree(f"{state}.dead", f"{where}/state.dead", dirs_exist_ok=True)
    if config:
        shutil.copy(config, f"{where}/config.toml")
    print(f"  server logs of the failure kept in {where} (the last is {os.path.basename(logs.current())})")


def mount(tierfs, config, mnt, logs, state, rng, migrations, arm=True, kernel=None):
    """Mounts with a fresh choice of crash point (or none: a timer kills). Returns (mount, point).
    `logs`: the layout's ServerLogs, each mount its own file.
    `migrations`: the layout moves files, half the named points are inside a move.
    `kernel`: a kernel-path layout's name (its own points)."""
    log = logs.base
    env_crash = None
    if arm and rng.random() < 0.6:
        if migrations and rng.random() < 0.5:
            # A move reaches each of its points once, but after_chunk once a chunk.
            point = rng.choice(KERNEL_MIGRATE_POINTS if kernel else MIGRATE_POINTS)
            env_crash = f"{point}:{rng.randrange(1, 20 if point.endswith('chunk') else 8)}"
        else:
            points = CRASH_POINTS
            if kernel and not migrations:
                points = [p for p in CRASH_POINTS if p not in KERNEL_ONLY_DROP]
            point = rng.choice(points)
            # Count 1 of the journal points is the mount's own root record: start at 2.
            env_crash = f"{point}:{rng.randrange(2, 40)}"
    os.environ["TIERFS_JOURNAL_CHECKPOINT_BYTES"] = str(rng.choice([8192, 65536, 1 << 30]))
    # Small chunks: a move of these small files is many copies under the shared
    # lock, so the kill and the writes land between them, not only before or after.
    os.environ["TIERFS_MIGRATE_CHUNK_BYTES"] = str(rng.choice([16384, 65536, 1 << 20]))
    if env_crash:
        os.environ["TIERFS_CRASH_AT"] = env_crash
    m = TierfsMount(tierfs, config, mnt, log, options=[f"log_file={logs.next()}"])
    try:
        m.start()
    except MountError:
        if not env_crash:
            raise
        # The point was reached during start-up (the mount logs its root and
        # the files it trimmed): a crash like any other, and the next mount
        # must come up without it.
        os.environ.pop("TIERFS_CRASH_AT", None)
        m.stop()
        m = TierfsMount(tierfs, config, mnt, log, options=[f"log_file={logs.next()}"])
        m.start()
        env_crash = None
    finally:
        os.environ.pop("TIERFS_CRASH_AT", None)
    return m, env_crash


def run_layout(tierfs, tmp, name, toml, iterations, rng, stats):
    config = f"{tmp}/{name}.toml"
    with open(config, "w") as f:
        f.write(toml)
    mnt, state = f"{tmp}/mnt-{name}", f"{tmp}/state-{name}"
    logs = ServerLogs(f"{tmp}/{name}.log")
    os.makedirs(mnt)
    model = Model()
    failures = 0
    tiers = TIERS.get(name, [])
    moves = Moves(tierfs, tiers, alive)
    kernel = name if name in KERNEL else None
    moves.kernel = kernel is not None
    # Unarmed: a journal point counted 2 or 3 would kill the server in the
    # mkdirs below, which expect it alive (the first iteration is killed by timer).
    m, env_crash = mount(tierfs, config, mnt, logs, state, rng, bool(tiers), arm=False,
                         kernel=kernel)
    for d in DIRS:
        os.mkdir(f"{mnt}/{d}")
    try:
        for it in range(iterations):
            held = []
            try:
                before, after, in_flight = run_until_killed(m, model, mnt, rng, held,
                                                            timer=env_crash is None, moves=moves)
            except AssertionError:
                # A failure on the live server: its log is the evidence.
                print(f"FAIL {name} iteration {it}, on the live server:")
                keep_logs(name, it, logs, config=config)
                raise
            stats["iterations"] += 1
            stats["crash_points" if env_crash else "timer_kills"] += 1
            if env_crash and env_crash.startswith("migrate."):
                stats["migrate_points"] += 1
            for fd, _ in held:
                try:
                    os.close(fd)
                except OSError:
                    pass
            status = m.stop()
            what = f"{name} iteration {it} (killed {'at ' + env_crash if env_crash else 'by timer'}"\
                   f", in flight: {in_flight.kind if in_flight else 'nothing'})"
            # What the dead server left, kept for a failure report (the remount compacts it).
            shutil.rmtree(f"{state}.dead", ignore_errors=True)
            shutil.copytree(state, f"{state}.dead")
            try:
                # Timer and crash points kill with SIGKILL: anything else (an abort,
                # a fault, an exit) is the server's own doing.
                if status != -signal.SIGKILL:
                    raise AssertionError(f"the server ended with status {status}, not by the kill")
                if in_flight is not None:
                    stats["in_flight"] += 1
                    # mmap_write's store met the kill (crash_kernel.store_in_child).
                    stats["sigbus"] += "SIGBUS" in str(getattr(in_flight, "error", ""))
                    stats["moves_in_flight"] += in_flight.kind == "migrate"
                for attempt in range(3):
                    run_check(tierfs, ["--state-dir", state, "--config", config])
                    m, env_crash = mount(tierfs, config, mnt, logs, state, rng, bool(tiers),
                                         arm=attempt == 0, kernel=kernel)
                    try:
                        seen = verify(tierfs, mnt, before, after, in_flight, tiers,
                                      state if kernel else None)
                        break
                    except (AssertionError, OSError):
                        # The mover reached the armed point while this compared: the
                        # expectations still hold (a move changes no byte), so again
                        # after another remount, unarmed.
                        if env_crash is None:
                            raise
                        wait_dead(m.pid, 2.0)
                        if alive(m.pid):
                            raise
                        stats["crash_points"] += 1
                        stats["migrate_points"] += env_crash.startswith("migrate.")
                        m.stop()
                model = rebuild_from(seen)
            except (AssertionError, MountError) as e:
                print(f"FAIL {what}: {e}")
                print("  operations of the iteration: " + "; ".join(LAST_HISTORY))
                keep_logs(name, it, logs, state, config)
                failures += 1
                if failures > 3:
                    break
                if not is_mounted(mnt):
                    m, env_crash = mount(tierfs, config, mnt, logs, state, rng, bool(tiers),
                                         kernel=kernel)
                model = rebuild_from(observe(mnt))
    finally:
        m.stop()
        moves.reap(m.pid, wait=True)
        for how, n in moves.count.items():
            stats["moves"][how] = stats["moves"].get(how, 0) + n
    return failures


# The operations of the running iteration, printed when it fails.
LAST_HISTORY = []


def run_until_killed(m, model, mnt, rng, held, timer, moves=None):
    """Runs operations until the server dies. Returns (model before the operation in
    flight, model after it, that operation or None). Background moves still running
    when the server dies are waited for (they fail with it)."""
    try:
        return run_operations(m, model, mnt, rng, held, timer, moves)
    finally:
        if moves:
            moves.focus = None
            moves.reap(m.pid, wait=True)


def run_operations(m, model, mnt, rng, held, timer, moves):
    pid = m.pid
    if timer:
        delay = rng.uniform(0.0, 0.25)
        try:
            # Through a pidfd: the server may die at a named point first, and its
            # pid may then belong to another process by the time the timer fires.
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            threading.Timer(delay, kill_through, (pidfd,)).start()
    history = LAST_HISTORY
    history.clear()
    for _ in range(400):
        if moves:
            moves.reap(pid)
        op = random_op(rng, model, mnt, held, moves)
        history.append((op.what or op.kind) + " " + " ".join(
            f"{k}={v}" for k, v in op.run.__closure__ and
            zip(op.run.__code__.co_freevars, (c.cell_contents for c in op.run.__closure__))
            if k in ("path", "target", "off", "size", "name", "tier")))
        after = model.copy()
        op.apply_model(after)
        try:
            # Any error on a live server fails the test (below), an EIO of an open
            # racing a move on the kernel path too (fixed; docs/operations.md).
            op.run()
        except NoEffect:
            continue
        except OSError as e:
            # A killed server may take a moment to be gone after its requests failed.
            wait_dead(pid, 2.0)
            if not alive(pid):
                op.error = e
                return model, after, op
            diag = subprocess.run([os.environ["TIERFS_BIN"], "stats", mnt], capture_output=True,
                                  text=True).stdout[-2000:]
            raise AssertionError(f"{op.kind} failed on a live server: {e}; check: {diag}; operations: "
                                 + "; ".join(history[-12:]))
        model = after
        if not alive(pid):
            return model, model, None
    # Nothing killed it (a crash point not reached): kill now, between operations.
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    return model, model, None


def kill_through(pidfd):
    """SIGKILL to the process behind pidfd unless it is gone already."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pid, seconds=5.0):
    for _ in range(int(seconds * 100)):
        if not alive(pid):
            return
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
