"""Migrations in the crash test (crash_test.py): the named points inside a
move, the moves mixed into the operations (`tierfs migrate` waiting, --async
or in the background, user.tierfs.tier), and the check after the remount that
every file is in one tier."""

import errno
import json
import os
import subprocess

# Inside a migration (tierfs/core/migrate.cc), in the order a move reaches them;
# chosen in the layouts with more than one tier.
MIGRATE_POINTS = [
    "migrate.after_allocate",    # the whole target taken, no record names it, nothing copied
    "migrate.after_chunk",       # a chunk copied (16 KiB to 1 MiB: mid-copy, or the copy done)
    "migrate.before_switch",     # catch-up copied under the unique lock, switch not done
    "migrate.after_switch_log",  # switch logged (extents, preferred tier), old blocks not freed
]


class NoEffect(Exception):
    """An operation refused as it may be (a move of a file another move holds, EBUSY;
    a target tier without room, ENOSPC): the model stays as it was."""


# What a move may answer on a live server without anything being wrong: the
# file renamed or unlinked since the command started (background moves), moved
# by another request or the mover now (EBUSY), no room on the target.
MOVE_REFUSALS = ("No such file or directory", "Device or resource busy", "has no room for it")


class Moves:
    """The migrations of one layout: its tiers, and `tierfs migrate` commands left
    running in the background while the next operations (writes to the same file
    first) go on. A move never changes a file's bytes, so the model ignores them;
    only a failure on a live server is an error."""

    def __init__(self, tierfs, tiers, alive):
        self.tierfs, self.tiers, self.alive = tierfs, tiers, alive
        self.background = []  # (Popen, what)
        self.focus = None     # (path, operations left): writes to the file a move holds
        self.kernel = False   # a kernel-path layout: mmap writes too (crash_kernel.py)
        self.count = {"migrate": 0, "migrate --async": 0, "migrate in background": 0,
                      "setfattr user.tierfs.tier": 0}

    def command(self, path, tier, extra=()):
        return [self.tierfs, "migrate", path, "--tier", tier, *extra]

    def finished(self, proc, what, pid):
        """Checks a background move that ended (raises on a failure while the server lives)."""
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode != 0 and self.alive(pid) and not any(r in err for r in MOVE_REFUSALS):
            raise AssertionError(f"{what} failed on a live server: {err.strip()}")

    def reap(self, pid, wait=False):
        """Checks the background moves that ended (all of them with wait). Each is
        dropped from the list before it is checked: a failure raised here must not
        leave a reaped process (its stderr closed) for the next reap to read again."""
        while self.background:
            done = [b for b in self.background if wait or b[0].poll() is not None]
            if not done:
                return
            proc, what = done[0]
            self.background.remove(done[0])
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                proc.stderr.close()
                raise AssertionError(f"{what} still running 30 s after the server died")
            self.finished(proc, what, pid)


def migrate_op(rng, moves, mnt, path):
    """A move of `path` to a random tier: `tierfs migrate` waiting, --async, left running
    in the background, or user.tierfs.tier (which the model stores as an xattr).
    Returns (its effect on the model, the run, which way)."""
    tier = rng.choice(moves.tiers)
    how = rng.choice(["migrate", "migrate", "migrate --async", "migrate in background",
                      "setfattr user.tierfs.tier"])
    moves.count[how] += 1
    if how == "setfattr user.tierfs.tier":
        def apply_tier(m):
            m.xattrs[m.names[path]]["user.tierfs.tier"] = tier.encode()

        def run_xattr():
            try:
                os.setxattr(f"{mnt}/{path}", "user.tierfs.tier", tier.encode())
            except OSError as e:
                if e.errno in (errno.EBUSY, errno.ENOSPC):
                    raise NoEffect() from e
                raise
        return apply_tier, run_xattr, how
    if how == "migrate in background":
        def run_background():
            proc = subprocess.Popen(moves.command(f"{mnt}/{path}", tier), text=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            moves.background.append((proc, f"tierfs migrate {path} --tier {tier} (background)"))
            moves.focus = (path, rng.randrange(1, 5))
        return lambda m: None, run_background, how

    def run_command():
        r = subprocess.run(moves.command(f"{mnt}/{path}", tier,
                                         ["--async"] if how.endswith("--async") else []),
                           capture_output=True, text=True)
        if r.returncode != 0:
            if any(refusal in r.stderr for refusal in MOVE_REFUSALS[1:]):
                return
            # The server died under it (ENOTCONN), or a real failure: the caller tells.
            raise OSError(errno.EIO, r.stderr.strip())
    return lambda m: None, run_command, how


def check_tiers(tierfs, mnt, names):
    """Every file's extents in one tier, the one its new data goes to (`tierfs map
    --json`): a move interrupted by the kill leaves the file in the tier it left or
    in the one it went to, never in both. Returns why not, or None."""
    for path in sorted(names):
        r = subprocess.run([tierfs, "map", "--json", f"{mnt}/{path}"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            return f"tierfs map {path}: exit {r.returncode}: {r.stderr.strip()}"
        page = json.loads(r.stdout)
        on = sorted({e["tier"] for e in page["extents"]})
        if len(on) > 1:
            return f"{path}: extents on tiers {', '.join(on)}"
        if on and page["preferred_tier"] != on[0]:
            return f"{path}: extents on tier {on[0]}, its new data goes to {page['preferred_tier']}"
    return None
