"""What the Python suites leave behind for tests/check_secrets.py to search,
and the ok/FAIL reporting they share.

With KUSTOMER_TEST_ARTIFACTS set (tests/run.sh sets it), the suites write
into that directory:
  keys.txt             every API key a suite uses (one per line)
  errors.txt           every SQLite error a tapped connection raised
  rows.txt             every row of every table of a tapped database, dumped
                       when the connection closes (or at exit)
  requests.ndjson      every request the fake Kustomer API recorded
Without it, everything here does nothing but open the connection.
"""
import atexit
import json
import os
import sqlite3
import weakref

DIR = os.environ.get("KUSTOMER_TEST_ARTIFACTS") or None
_open = weakref.WeakSet()


def _append(name, text):
    if DIR is None:
        return
    with open(os.path.join(DIR, name), "a", encoding="utf-8",
              errors="backslashreplace") as f:
        f.write(text)


_keys = []


def key(k):
    """Declare an API key the suite uses; returns it."""
    _append("keys.txt", k + "\n")
    _keys.append(k)
    return k


FAILED = 0


def report(name, ok, detail=""):
    """Print "ok <name>", or "FAIL <name>: <detail>" with the declared keys
    masked, and count the failures in FAILED."""
    global FAILED
    if ok:
        print("ok " + name)
        return
    FAILED += 1
    detail = str(detail)
    for k in _keys:
        detail = detail.replace(k, "<key>")
    print("FAIL %s: %s" % (name, detail))


def so_path(argv, root):
    """The extension to test: argv[1] (relative to the current directory),
    else dist/kustomer.so under root."""
    so = argv[1] if len(argv) > 1 else os.path.join(root, "dist", "kustomer.so")
    return so if os.path.isabs(so) else os.path.join(os.getcwd(), so)


def fake_requests(records):
    """Keep the fake's request record (call before it is reset)."""
    _append("requests.ndjson",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _error(e):
    _append("errors.txt", "%s\n" % e)


class TapCursor(sqlite3.Cursor):
    def execute(self, *a, **k):
        try:
            return super().execute(*a, **k)
        except sqlite3.Error as e:
            _error(e)
            raise

    def executemany(self, *a, **k):
        try:
            return super().executemany(*a, **k)
        except sqlite3.Error as e:
            _error(e)
            raise

    def __next__(self):
        try:
            return super().__next__()
        except sqlite3.Error as e:
            _error(e)
            raise

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            _error(e)
            raise

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            _error(e)
            raise


class TapConnection(sqlite3.Connection):
    def cursor(self, factory=TapCursor):
        return super().cursor(factory)

    def execute(self, *a, **k):
        return self.cursor().execute(*a, **k)

    def executemany(self, *a, **k):
        return self.cursor().executemany(*a, **k)

    def dump_rows(self):
        """Every row of every ordinary table (shadow tables included)."""
        if DIR is None:
            return
        out = []
        try:
            for schema in ("main", "temp"):
                names = [r[0] for r in sqlite3.Connection.execute(
                    self, "select name from %s.sqlite_schema where type='table'"
                    " and sql not like 'CREATE VIRTUAL%%'" % schema)]
                for n in names:
                    for row in sqlite3.Connection.execute(
                            self, 'select * from %s."%s"'
                            % (schema, n.replace('"', '""'))):
                        out.append("%s.%s\t%r\n" % (schema, n, row))
        except sqlite3.Error as e:
            out.append("dump failed: %s\n" % e)
        _append("rows.txt", "".join(out))

    def close(self):
        try:
            self.dump_rows()
        except sqlite3.ProgrammingError:
            pass  # already closed
        _open.discard(self)
        super().close()


def connect(path, **kw):
    """sqlite3.connect with errors and stored rows kept for the scan."""
    db = sqlite3.connect(path, factory=TapConnection, **kw)
    _open.add(db)
    return db


def open_db(so, path):
    """A connection in autocommit mode with the extension loaded."""
    db = connect(path, isolation_level=None, timeout=30)
    db.enable_load_extension(True)
    db.load_extension(so)
    return db


@atexit.register
def _dump_open():
    for db in list(_open):
        try:
            db.dump_rows()
        except sqlite3.ProgrammingError:
            pass
