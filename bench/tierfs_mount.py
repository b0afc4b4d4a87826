"""The one Python way to start and stop a tierfs mount (layout_sweep.py and
server_bench.py use it; C++ has tests/support/tierfs_mount.h).

`tierfs mount --config FILE MOUNTPOINT` in daemon mode returns only once the
mount is live, or exits non-zero with the one line that says why. This process
becomes a child subreaper, so the daemon the command leaves behind is
reparented to it: its pid (for CPU time, callgrind) and its exit status stay
observable.
"""

import ctypes
import json
import os
import subprocess
import time

_PR_SET_CHILD_SUBREAPER = 36


class MountError(Exception):
    """One line for the user: what did not mount or did not stop, and why."""


def _become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise MountError(f"cannot become a child subreaper: {os.strerror(ctypes.get_errno())}")


def _daemon_of(config):
    """The child of ours whose command line names `config`: the server `tierfs mount` left."""
    me = str(os.getpid())
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if fields[1] == me and os.fsencode(config) in argv:
            return int(name)
    return None


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


class TierfsMount:
    """One mount of `config` on `mountpoint`; what tierfs prints goes to `log`.

    `wrapper` prefixes the command (e.g. valgrind); the daemon it forks is found the same way.
    """

    def __init__(self, tierfs, config, mountpoint, log, wrapper=(), options=()):
        self.tierfs, self.config, self.mountpoint, self.log = tierfs, config, mountpoint, log
        self.wrapper = list(wrapper)
        self.options = [arg for option in options for arg in ("-o", option)]  # FUSE options
        self.pid = None

    def start(self):
        _become_subreaper()
        # Its own session: a Ctrl-C reaches the caller, which then unmounts in order.
        with open(self.log, "w") as out:
            status = subprocess.run(self.wrapper + [self.tierfs, "mount", "--config", self.config]
                                    + self.options + [self.mountpoint],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True).returncode
        if status != 0:
            raise MountError(f"tierfs did not mount {self.mountpoint}: {self.log_line()}")
        self.pid = _daemon_of(self.config)
        if self.pid is None:
            self.stop()
            raise MountError(f"tierfs mounted {self.mountpoint} but its server is not found")

    def log_line(self):
        """The last line tierfs printed, for messages."""
        try:
            with open(self.log) as f:
                lines = [line.strip() for line in f if line.strip()]
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no log)"

    def stop(self, timeout=60):
        """Unmounts, waits for the server; returns its exit status (-9 when it had to be killed)."""
        if is_mounted(self.mountpoint):
            if subprocess.run(["fusermount3", "-u", self.mountpoint],
                              capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)
        if self.pid is None:
            return 0
        pid, self.pid = self.pid, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        return -9


def _tierfs_json(tierfs, *args):
    """The JSON a tierfs command prints; MountError with its one line when it refuses."""
    r = subprocess.run([tierfs, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise MountError((r.stderr.strip().splitlines() or ["(no output)"])[-1])
    return json.loads(r.stdout)


def layout_limits(tierfs):
    """min/max_granularity_bytes, max_ways, max_weight, as tierfs topology --json gives them."""
    return _tierfs_json(tierfs, "topology", "--json")["limits"]


def check_config(tierfs, path=None):
    """tierfs check-config --json of `path` (None: the built-in default): the resolved tiers."""
    return _tierfs_json(tierfs, "check-config", *([path] if path else ["--default"]), "--json")


def config_holding(tierfs, write, need_bytes):
    """The path of a one-tier configuration holding at least need_bytes in whole rows.

    write(size_bytes) writes the configuration with that tier size and returns its path.
    tierfs rounds a size down to whole rows and refuses less than one, so a trial (doubled
    until tierfs accepts it) gives the row size that the final size is a multiple of.
    """
    size = need_bytes
    for _ in range(64):
        try:
            row = check_config(tierfs, write(size))["tiers"][0]["row_bytes"]
            break
        except MountError as refusal:
            last = refusal
            size *= 2
    else:
        raise last
    return write(max(1, -(-need_bytes // row)) * row)
