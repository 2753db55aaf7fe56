"""A cache of the hot reads (resolve an alias, get a version, an IOV tag's entries) that is never
stale on the process that wrote, and is told by the database itself when anyone else wrote.

Every cached value is stamped with the *generation* it was read in; any committed change to the
registry's tables starts a new generation, and a value of an older generation is never served.
Who starts a new generation:

- this process, right after each of its own commits (:meth:`ReadCache.invalidate`, called by
  ``Store.write``): read-your-writes on every replica;
- SQLite: ``PRAGMA data_version`` on a connection of the cache's own, checked before each lookup
  (a few microseconds, in process). It changes when *any* other connection commits, other
  processes included, so the cache is exact;
- PostgreSQL: triggers on the registry's tables ``NOTIFY beamops_registry_changed`` (migration
  0003; a notification is delivered when the writing transaction commits, whoever wrote, SQL
  typed by hand included), and a listener thread here starts a new generation for each. Another
  replica's change is seen once its notification arrives (well under a millisecond on one host;
  one network delivery across hosts). While the listener is not connected the cache is off and
  every read goes to the database.

A value read in generation g is stored only as of g, so a read that raced a change can never be
served after the change is known. Only successful lookups are cached; the size is bounded (the
oldest entries leave first).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any, Callable, Hashable

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "beamops_registry_changed"


class ReadCache:
    """Values keyed by any hashable key, valid within one generation of the database."""

    def __init__(self, max_entries: int = 10_000, change_watch: "ChangeWatch | None" = None) -> None:
        self._max = max_entries
        self._values: dict[Hashable, tuple[int, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._watch = change_watch or AlwaysCurrent()
        self._watch.on_change = self.invalidate
        self.hits = 0
        self.misses = 0

    def generation(self) -> int | None:
        """The current generation (after asking the watch), or None while the cache is off."""
        if not self._watch.poll():
            if self._values:  # nothing read before the watch went blind can be trusted after
                self.invalidate()
            return None
        return self._generation

    def get(self, key: Hashable) -> Any | None:
        return self._cached(key, self.generation())

    def _cached(self, key: Hashable, generation: int | None) -> Any | None:
        entry = self._values.get(key)
        if generation is not None and entry is not None and entry[0] == generation:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: Any, generation: int | None) -> None:
        """Keep ``value``, read in ``generation``, unless a change has been seen since."""
        with self._lock:
            if generation is None or generation != self._generation:
                return
            if len(self._values) >= self._max:
                self._values.pop(next(iter(self._values)))
            self._values[key] = (generation, value)

    def load(self, key: Hashable, read: Callable[[], Any]) -> Any:
        """The cached value for ``key``, or ``read()`` (kept when it is not None)."""
        generation = self.generation()  # before reading: a change during the read wins
        value = self._cached(key, generation)
        if value is not None:
            return value
        value = read()
        if value is not None:
            self.put(key, value, generation)
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._values.clear()

    def close(self) -> None:
        self._watch.close()


class ChangeWatch:
    """Tells the cache about changes made by other connections."""

    on_change: Callable[[], None] = staticmethod(lambda: None)

    def poll(self) -> bool:
        """Report any change seen (through ``on_change``); False while changes cannot be seen."""
        return True

    def close(self) -> None:
        pass


class AlwaysCurrent(ChangeWatch):
    """No other writer exists (tests, a private in-memory store): only local writes invalidate."""


class SqliteDataVersion(ChangeWatch):
    """``PRAGMA data_version`` on a connection of its own: changes when another connection commits."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._seen = self._version()

    def _version(self) -> int:
        (version,), = self._conn.execute("PRAGMA data_version").fetchall()  # all: no statement left open
        return version

    def poll(self) -> bool:
        with self._lock:
            version = self._version()
            changed, self._seen = version != self._seen, version
        if changed:
            self.on_change()
        return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresNotifications(ChangeWatch):
    """A thread that LISTENs on the registry's channel and reports every notification.

    ``connect`` opens a new autocommit psycopg connection. Until LISTEN has succeeded (and again
    whenever the connection is lost, until it is back) ``poll`` says False: the cache is off.
    """

    def __init__(self, connect: Callable[[], Any], retry_s: float = 1.0) -> None:
        self._connect = connect
        self._retry_s = retry_s
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="registry-cache-listener", daemon=True)
        self._thread.start()

    def poll(self) -> bool:
        return self._listening.is_set()

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
                self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.on_change()  # anything may have changed while not listening
                self._listening.set()
                while not self._stop.is_set():
                    for _ in self._conn.notifies(timeout=0.5):
                        self.on_change()
            except Exception as exc:  # noqa: BLE001 - any failure: cache off, reconnect
                if not self._stop.is_set():
                    log.warning("registry cache listener lost the database (%s); cache off until it is back",
                                type(exc).__name__)
            finally:
                self._listening.clear()
                self.on_change()
                self._close_conn()
            self._stop.wait(self._retry_s)

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def change_watch_for(url: str, dialect: str, psycopg_connect: Callable[[], Any] | None = None) -> ChangeWatch:
    """The watch that fits the database: data_version for a SQLite file, LISTEN for PostgreSQL."""
    if dialect == "sqlite":
        path = url.split(":///", 1)[-1]
        return AlwaysCurrent() if path in ("", ":memory:") else SqliteDataVersion(path)
    if dialect == "postgresql" and psycopg_connect is not None:
        watch = PostgresNotifications(psycopg_connect)
        if not watch.wait_listening(timeout=10):
            log.warning("registry cache listener is not connected yet; reads go to the database meanwhile")
        return watch
    raise ValueError(f"no change watch for the {dialect} dialect")
