#!/usr/bin/env python3
"""clang-tidy on every C++ translation unit of the project that a build
compiles, for scripts/check-style.sh (the style gate).

    scripts/check-tidy.py BUILD_DIR

Runs one clang-tidy per source, as many at once as there are CPUs, the
slowest first (their CPU times from the last run, kept beside the cache, else
a guess from the heavy headers they include), so that the run does not end
on one long file. Prints the findings and exits 1 if there are any.

A source whose clang-tidy ran clean is remembered under a key that covers
everything its result depends on: clang-tidy's version, the .clang-tidy
files, the source's compile command and the content of every file clang
reads for it (`clang++ -M` with the same command). A later run with the same key skips
it; any change to the source, a header it includes (the project's or the
system's), the flags or the checks runs it again. Findings are never
remembered. Cache: $TIERFS_TIDY_CACHE (`off` turns it off), else
/var/cache/tierfs-tidy when writable (CI runs as root), else
~/.cache/tierfs-tidy.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def sources(build):
    """(relative path, compile command entry) of every project .cc the build compiles."""
    seen = {}
    for entry in json.load(open(os.path.join(build, "compile_commands.json"))):
        path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
        if path.endswith(".cc") and path.startswith(ROOT + "/") and "/build" not in path[len(ROOT):]:
            seen.setdefault(os.path.relpath(path, ROOT), entry)
    return sorted(seen.items())


def cache_dir():
    where = os.environ.get("TIERFS_TIDY_CACHE")
    if where == "off":
        return None
    candidates = [where] if where else [
        "/var/cache/tierfs-tidy", os.path.join(os.path.expanduser("~"), ".cache", "tierfs-tidy")]
    for path in candidates:
        try:
            os.makedirs(path, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            pass
    return None


_content = {}


def file_digest(path):
    """sha256 of a file's content, once per run (most headers are shared)."""
    if path not in _content:
        try:
            with open(path, "rb") as f:
                _content[path] = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            _content[path] = "missing"
    return _content[path]


def dependencies(entry):
    """Every file clang reads for this source, or None if it cannot say."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = ["clang++"], False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg in ("-o", "-MF", "-MQ", "-MT"):
            skip = True
        elif arg not in ("-c", "-MD", "-MMD"):
            out.append(arg)
    # Warnings do not change what is read; gcc-only ones would only add noise.
    out = [a for a in out if not a.startswith("-W")] + ["-M", "-w"]
    try:
        result = subprocess.run(out, cwd=entry["directory"], capture_output=True, text=True)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    names = result.stdout.replace("\\\n", " ").split()[1:]  # after "target.o:"
    return sorted({os.path.normpath(os.path.join(entry["directory"], n)) for n in names})


def header_filter():
    """.clang-tidy's HeaderFilterRegex: which headers' findings are reported."""
    with open(os.path.join(ROOT, ".clang-tidy")) as f:
        for line in f:
            match = re.match(r"HeaderFilterRegex:\s*'(.*)'\s*$", line)
            if match:
                return re.compile(match.group(1))
    return None


def unchanged(deps):
    """Whether every file in deps still has the content key() read: a file
    edited while clang-tidy ran must not have its result stored under the
    old content's key."""
    for path in deps:
        try:
            with open(path, "rb") as f:
                now = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            now = "missing"
        if now != _content.get(path):
            return False
    return True


def key(entry, common, reported):
    """(cache key, files read) of one source, or (None, None) if clang cannot
    list what it reads. Paths
    in the tree count relative to it, so a clone elsewhere (CI's) finds the
    results of another; which headers the header filter reports on counts as
    it matches their full paths."""
    deps = dependencies(entry)
    if deps is None:
        return None, None
    here = lambda text: text.replace(ROOT + "/", "@/").replace(ROOT, "@")
    h = hashlib.sha256(common.encode())
    h.update(here(json.dumps([entry["directory"], entry.get("command", entry.get("arguments"))])).encode())
    for path in deps:
        shown = bool(reported and reported.search(path))
        h.update(f"\0{here(path)}\0{shown}\0{file_digest(path)}".encode())
    return h.hexdigest(), deps


def guess_seconds(name):
    """clang-tidy's CPU time for a source never timed: CLI11 adds about 14 s to
    a translation unit, nlohmann-json 4, over about 8 for the rest."""
    with open(os.path.join(ROOT, name), errors="replace") as f:
        text = f.read()
    return 8 + 14 * ("CLI/CLI.hpp" in text) + 4 * ("nlohmann/json" in text)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    units = sources(build)
    if not units:
        print(f"check-tidy: no source of {ROOT} in {build}/compile_commands.json", file=sys.stderr)
        return 1
    cache = cache_dir()
    times_path = os.path.join(cache, "times.json") if cache else None
    try:
        last_times = json.load(open(times_path)) if times_path else {}
    except (OSError, ValueError):
        last_times = {}

    common = ""
    if cache:
        version = subprocess.run(["clang-tidy", "--version"], capture_output=True, text=True).stdout
        common = version
        configs = subprocess.run(["git", "ls-files", "-z", "--", ".clang-tidy", "*/.clang-tidy"],
                                 cwd=ROOT, capture_output=True, text=True).stdout
        for config in sorted(filter(None, configs.split("\0"))):
            with open(os.path.join(ROOT, config)) as f:
                common += f"\0{config}\0{f.read()}"

    jobs = os.cpu_count() or 1
    keys, deps = {}, {}
    if cache:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            reported = header_filter()
            for (name, entry), (k, d) in zip(units, pool.map(lambda u: key(u[1], common, reported), units)):
                keys[name], deps[name] = k, d
    todo = []
    for name, _ in units:
        try:
            os.utime(os.path.join(cache, keys[name]))  # a hit: kept another 30 days
        except (KeyError, TypeError, OSError):
            todo.append(name)
    todo.sort(key=lambda n: -last_times.get(n, guess_seconds(n)))

    def tidy(name):
        """(name, exit status, output, CPU seconds) of clang-tidy on one source."""
        with tempfile.TemporaryFile("w+") as out:
            child = subprocess.Popen(["clang-tidy", "-p", build, "--quiet", name], cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT, text=True)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            return name, child.returncode, out.read(), usage.ru_utime + usage.ru_stime

    failed, findings = [], []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for name, status, output, seconds in pool.map(tidy, todo):
            last_times[name] = round(seconds, 1)
            if status != 0:
                failed.append(name)
                findings.append(output)
            elif cache and keys.get(name) and unchanged(deps[name]):
                open(os.path.join(cache, keys[name]), "w").close()

    if times_path:
        fd, tmp = tempfile.mkstemp(dir=cache)
        with os.fdopen(fd, "w") as f:
            json.dump(last_times, f, indent=0, sort_keys=True)
        os.replace(tmp, times_path)
        # Entries no run has hit for 30 days go.
        cutoff = time.time() - 30 * 86400
        for entry in os.scandir(cache):
            if len(entry.name) == 64 and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)

    print(f"check-tidy: {len(units)} sources, {len(units) - len(todo)} unchanged since a clean run "
          f"({cache or 'no cache'}), {len(todo)} run")
    if failed:
        lines = sorted({l for out in findings for l in out.splitlines()
                        if "error:" in l or "warning:" in l})
        print("\n".join(lines) if lines else "\n".join(findings), file=sys.stderr)
        print(f"check-tidy: clang-tidy found problems in {len(failed)} of {len(units)} sources: "
              + " ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
