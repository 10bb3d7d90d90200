#!/usr/bin/python3
"""make install, make uninstall and make deb, checked.

    /usr/bin/python3 tests/test_install.py

Runs the Makefile's own targets, as a user would, on dist/kustomer.so (what
they ship; built if missing), and loads the installed copies with the
sqlite3 CLI:

- one version: VERSION, kustomer_version(), the README (one mention), the
  CHANGELOG's newest entry and the .deb's Version agree;
- make install into a temporary DESTDIR, with the default PREFIX and with
  another one beside files that are not its own: exactly the expected
  files, modes and contents; the installed extension loads by its path;
  make uninstall removes exactly those files and the folders left empty;
- make deb: the file name, every control field, Depends naming the
  packages that provide libcurl, cJSON, libcrypto and zlib (found here with
  ldd and dpkg -S, and the same from pkg/deb-depends.sh's fallback), the
  contents (dpkg-deb -c: paths, root ownership, modes), md5sums, and the
  extracted extension loading;
- as root with CI=true or KUSTOMER_TEST_DPKG=1: dpkg -i, loaded by its
  installed path /usr/lib/sqlite3/kustomer.so, then dpkg --purge.

Prints "ok <name>" / "FAIL <name>: <detail>" lines; exit status 1 on failure.
"""
import filecmp
import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402
from ktap import report  # noqa: E402

SQLITE3 = os.environ.get("SQLITE3", "sqlite3")
PKG = "kustomer-sqlite"

# The Makefile's own defaults, not the caller's: a PREFIX or DESTDIR in the
# environment would move the install, a parent make's MAKEFLAGS would
# bring its jobserver, and a sanitizer preload would reach the compiler.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("PREFIX", "DESTDIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                    "LD_PRELOAD", "DEB_MAINTAINER")}
ENV["LC_ALL"] = "C"


def run(argv, env=None):
    return subprocess.run(argv, env=env or ENV, capture_output=True,
                          text=True, timeout=300)


def make(*args):
    p = run(["make", "-C", ROOT, "--no-print-directory"] + list(args))
    return p.returncode, (p.stdout + p.stderr).strip()


def tail(text, n=6):
    return " | ".join(text.splitlines()[-n:])


def load_version(path):
    """kustomer_version() from the extension at path, loaded by the CLI."""
    p = run([SQLITE3, "-batch", "-init", "/dev/null", "-cmd",
             ".load '%s'" % path, ":memory:", "select kustomer_version();"])
    return p.stdout.strip() if p.returncode == 0 and not p.stderr else \
        "error (exit %d): %s" % (p.returncode, p.stderr.strip())


def tree(top):
    """(files, dirs) under top, relative, sorted."""
    files, dirs = [], []
    for d, dn, fn in os.walk(top):
        rel = os.path.relpath(d, top)
        if rel != ".":
            dirs.append(rel)
        files += [os.path.normpath(os.path.join(rel, f)) for f in fn]
    return sorted(files), sorted(dirs)


VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()
RECIPES = sorted(os.path.basename(f) for f in
                 glob.glob(os.path.join(ROOT, "sql", "*.sql"))) + \
    ["sample_events.ndjson"]
DOC = "share/doc/" + PKG
# Installed file (relative to the prefix) -> its source in the repository.
INSTALLED = {"lib/sqlite3/kustomer.so": "dist/kustomer.so",
             DOC + "/README.md": "README.md",
             DOC + "/CHANGELOG.md": "CHANGELOG.md"}
INSTALLED.update({DOC + "/sql/" + f: "sql/" + f for f in RECIPES})
# What the install creates besides the standard folders above it.
OWN_DIRS = ["lib/sqlite3", DOC, DOC + "/sql"]


def check_version():
    report("version: VERSION is x.y.z",
           re.fullmatch(r"\d+\.\d+\.\d+", VERSION), repr(VERSION))
    got = load_version(os.path.join(ROOT, "dist", "kustomer.so"))
    report("version: kustomer_version() is VERSION", got == VERSION,
           "%r, VERSION %r" % (got, VERSION))
    readme = open(os.path.join(ROOT, "README.md")).read()
    said = re.findall(r"kustomer-sqlite (\d+\.\d+\.\d+)", readme)
    report("version: the README says it once",
           said == [VERSION] and readme.count(VERSION) == 1,
           "mentions %r, %d copies of %s" % (said, readme.count(VERSION),
                                             VERSION))
    log = open(os.path.join(ROOT, "CHANGELOG.md")).read()
    m = re.search(r"^## (\S+)", log, re.M)
    report("version: the CHANGELOG's newest entry is VERSION",
           m and m.group(1) == VERSION, m and m.group(1))


def check_tree(name, top, prefix, others):
    """The files under top: those installed under prefix plus others."""
    files, _ = tree(top)
    want = sorted([os.path.join(prefix, f) for f in INSTALLED] + others)
    report(name + ": exactly the expected files", files == want,
           "extra %s, missing %s" % (sorted(set(files) - set(want)),
                                     sorted(set(want) - set(files))))
    bad = []
    for f, src in INSTALLED.items():
        path = os.path.join(top, prefix, f)
        if not os.path.isfile(path):
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o644:
            bad.append("%s mode %o" % (f, mode))
        if not filecmp.cmp(path, os.path.join(ROOT, src), shallow=False):
            bad.append("%s differs from %s" % (f, src))
    for d in OWN_DIRS:
        path = os.path.join(top, prefix, d)
        if os.path.isdir(path) and stat.S_IMODE(os.stat(path).st_mode) != 0o755:
            bad.append("%s/ mode %o" % (d, stat.S_IMODE(os.stat(path).st_mode)))
    report(name + ": modes and contents", not bad, "; ".join(bad))


def check_install(tmp):
    dest = os.path.join(tmp, "default")
    rc, out = make("install", "DESTDIR=" + dest)
    report("install: make install DESTDIR=...", rc == 0, tail(out))
    check_tree("install", dest, "usr/local", [])
    for suffix in ("", ".so"):
        path = os.path.join(dest, "usr/local/lib/sqlite3/kustomer" + suffix)
        got = load_version(path)
        report("install: .load %s" % path.replace(tmp, "$TMP"),
               got == VERSION, got)
    rc, out = make("uninstall", "DESTDIR=" + dest)
    report("uninstall: make uninstall DESTDIR=...", rc == 0, tail(out))
    files, dirs = tree(dest)
    standard = ["usr", "usr/local", "usr/local/lib", "usr/local/share",
                "usr/local/share/doc"]
    report("uninstall: no file left, only the standard folders", not files
           and set(dirs) <= set(standard), "files %s, folders %s"
           % (files, sorted(set(dirs) - set(standard))))

    # Another prefix, and files that are not the install's: they stay, and
    # so do the folders holding them.
    dest = os.path.join(tmp, "shared")
    prefix = "opt/ks"
    others = [prefix + "/lib/sqlite3/other.so", prefix + "/" + DOC + "/notes.txt"]
    for f in others:
        os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
        with open(os.path.join(dest, f), "w") as fh:
            fh.write("not the install's\n")
    rc, out = make("install", "DESTDIR=" + dest, "PREFIX=/" + prefix)
    report("install: PREFIX=/opt/ks beside other files", rc == 0, tail(out))
    check_tree("install PREFIX=/opt/ks", dest, prefix, others)
    got = load_version(os.path.join(dest, prefix, "lib/sqlite3/kustomer"))
    report("install PREFIX=/opt/ks: loads", got == VERSION, got)
    rc, out = make("uninstall", "DESTDIR=" + dest, "PREFIX=/" + prefix)
    files, dirs = tree(dest)
    report("uninstall PREFIX=/opt/ks: the other files and their folders stay",
           rc == 0 and files == sorted(others)
           and prefix + "/" + DOC + "/sql" not in dirs,
           "exit %d, files %s, folders %s" % (rc, files, dirs))


def packages_of(libs):
    """lib name prefix -> the Debian package holding what dist/kustomer.so
    links under that name, found with ldd and dpkg -S."""
    ldd = run(["ldd", os.path.join(ROOT, "dist", "kustomer.so")]).stdout
    found = {}
    for lib in libs:
        m = re.search(r"^\s*(%s\.so\S*) => (\S+)" % re.escape(lib), ldd, re.M)
        if not m:
            found[lib] = None
            continue
        path = m.group(2)
        for p in (path, "/usr" + path, re.sub(r"^/usr", "", path),
                  os.path.realpath(path)):
            q = run(["dpkg", "-S", p])
            if q.returncode == 0:
                found[lib] = q.stdout.split(":")[0]
                break
        else:
            found[lib] = None
    return found


def depends_names(value):
    return sorted(re.sub(r"[\s(].*", "", d.strip()).split(":")[0]
                  for d in value.split(",") if d.strip())


def check_deb(tmp):
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    rc, out = make("deb")
    deb = os.path.join(ROOT, "dist", "%s_%s_%s.deb" % (PKG, VERSION, arch))
    report("deb: make deb writes dist/%s" % os.path.basename(deb),
           rc == 0 and os.path.isfile(deb), tail(out))
    if not os.path.isfile(deb):
        return None

    field = {}
    for f in ("Package", "Version", "Architecture", "Maintainer", "Depends",
              "Section", "Priority", "Description", "Installed-Size"):
        field[f] = run(["dpkg-deb", "-f", deb, f]).stdout.strip()
    report("deb: Package, Version, Architecture",
           (field["Package"], field["Version"], field["Architecture"])
           == (PKG, VERSION, arch),
           (field["Package"], field["Version"], field["Architecture"]))
    empty = [f for f in ("Maintainer", "Section", "Priority", "Description",
                         "Installed-Size") if not field[f]]
    report("deb: Maintainer, Section, Priority, Description, Installed-Size",
           not empty, "empty: %s" % empty)

    want = packages_of(["libcurl", "libcjson", "libcrypto", "libz"])
    names = depends_names(field["Depends"])
    missing = [lib for lib, p in want.items() if p is None or p not in names]
    report("deb: Depends names the packages of %s"
           % ", ".join("%s (%s)" % (lib, p) for lib, p in want.items()),
           not missing, "missing %s in %r" % (missing, field["Depends"]))
    report("deb: Depends versions every package (dpkg-shlibdeps)",
           all("(>=" in d for d in field["Depends"].split(",")),
           field["Depends"])
    fb = run([os.path.join(ROOT, "pkg", "deb-depends.sh"),
              os.path.join(ROOT, "dist", "kustomer.so")],
             env=dict(ENV, KUSTOMER_DEB_NO_SHLIBDEPS="1"))
    report("deb: the ldd/dpkg -S fallback names the same packages",
           fb.returncode == 0 and depends_names(fb.stdout) == names,
           "%r (%s) against %r" % (fb.stdout.strip(), fb.stderr.strip(), names))

    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    entries = {}
    for line in listing:
        parts = line.split(None, 5)   # mode owner size date time path
        path = re.sub(r"^\./", "/", parts[5]).rstrip("/") or "/"
        entries[path] = (parts[0], parts[1])
    files = sorted(p for p, (m, _) in entries.items() if m.startswith("-"))
    want_files = sorted(["/usr/" + f for f in INSTALLED]
                        + ["/usr/%s/copyright" % DOC])
    report("deb: exactly the expected files", files == want_files,
           "extra %s, missing %s" % (sorted(set(files) - set(want_files)),
                                     sorted(set(want_files) - set(files))))
    other = sorted(p for p, (m, _) in entries.items()
                   if m[0] not in "-d")
    owners = sorted({o for _, o in entries.values()})
    modes = sorted({"%s %s" % (m, p) for p, (m, _) in entries.items()
                    if m not in ("-rw-r--r--", "drwxr-xr-x")})
    report("deb: root-owned, 644 files and 755 folders, nothing else",
           owners == ["root/root"] and not modes and not other,
           "owners %s, modes %s, others %s" % (owners, modes, other))

    info = run(["dpkg-deb", "-I", deb]).stdout
    report("deb: control and md5sums members (dpkg-deb -I)",
           re.search(r"^\s+\d+ bytes,\s+\d+ lines\s+control", info, re.M)
           and re.search(r"\bmd5sums\b", info), tail(info))

    x = os.path.join(tmp, "deb")
    p = run(["dpkg-deb", "-x", deb, x])
    bad = []
    for line in open(os.path.join(ROOT, "build/deb/debian", PKG,
                                  "DEBIAN/md5sums")):
        digest, path = line.split(None, 1)
        path = os.path.join(x, path.strip())
        if not os.path.isfile(path) or \
           hashlib.md5(open(path, "rb").read()).hexdigest() != digest:
            bad.append(path.replace(x, ""))
    report("deb: extracted files match md5sums", p.returncode == 0 and not bad,
           "%s %s" % (p.stderr.strip(), bad))
    bad = [f for f, src in INSTALLED.items() if f.startswith("share/")
           and not filecmp.cmp(os.path.join(x, "usr", f),
                               os.path.join(ROOT, src), shallow=False)]
    report("deb: docs are the repository's", not bad, bad)
    got = load_version(os.path.join(x, "usr/lib/sqlite3/kustomer"))
    report("deb: the extracted extension loads", got == VERSION, got)
    return deb


def status(pkg):
    return run(["dpkg-query", "-W", "-f=${Status}", pkg]).stdout.strip()


def check_dpkg(deb):
    if os.geteuid() != 0 or not (os.environ.get("CI") == "true"
                                 or os.environ.get("KUSTOMER_TEST_DPKG") == "1"):
        print("# skip dpkg -i: only as root with CI=true or KUSTOMER_TEST_DPKG=1")
        return
    so = "/usr/lib/sqlite3/kustomer.so"
    # Never replace or remove what someone installed here.
    if "installed" in status(PKG) or os.path.exists(so):
        print("# skip dpkg -i: %s is installed already" % PKG)
        return
    try:
        p = run(["dpkg", "-i", deb])
        report("dpkg -i: installs", p.returncode == 0, tail(p.stdout + p.stderr))
        listed = run(["dpkg", "-L", PKG]).stdout.split()
        report("dpkg -i: dpkg -L lists %s and the copyright" % so,
               so in listed and "/usr/%s/copyright" % DOC in listed, listed)
        got = load_version("/usr/lib/sqlite3/kustomer")
        report("dpkg -i: .load /usr/lib/sqlite3/kustomer", got == VERSION, got)
    finally:
        p = run(["dpkg", "--purge", PKG])
    report("dpkg --purge: removes it and its files",
           p.returncode == 0 and "installed" not in status(PKG)
           and not os.path.exists(so) and not os.path.exists("/usr/" + DOC),
           tail(p.stdout + p.stderr))


def main():
    rc, out = make()
    report("make: builds dist/kustomer.so", rc == 0, tail(out))
    tmp = tempfile.mkdtemp(prefix="kustomer-install.")
    try:
        for step in (check_version, lambda: check_install(tmp)):
            try:
                step()
            except Exception as e:  # one broken step, not the whole suite
                report("install: %s" % getattr(step, "__name__", "step"),
                       False, "%s: %s" % (type(e).__name__, e))
        try:
            deb = check_deb(tmp)
            if deb:
                check_dpkg(deb)
        except Exception as e:
            report("deb", False, "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if ktap.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
