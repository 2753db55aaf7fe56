"""The registry's database: an engine from a URL, schema migrations, and transactions with retry.

- ``sqlite:///path/registry.db`` (the default, under ``<var_dir>``): WAL journal, a busy timeout,
  foreign keys on, and write transactions that start with ``BEGIN IMMEDIATE`` so concurrent
  writers queue instead of failing half-way.
- ``postgresql+psycopg://user@host:port/db`` (psycopg 3): write paths lock the row they extend
  with ``SELECT ... FOR UPDATE``; serialization failures and deadlocks are retried.

Every mutation runs in :meth:`Store.write`: the function it is given does the change and appends
its audit event in one transaction; the transaction is retried (a few times, with jittered
backoff) when a unique constraint or a lock says another writer got there first. Writes that
arrive while another commits share the next transaction (group commit: one durable commit for
many writes, see group_commit.py).
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from beamops.runtime.errors import Unavailable

from .group_commit import GroupCommit, Outcome
from .read_cache import ReadCache, change_watch_for

log = logging.getLogger(__name__)

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a
SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_url(var_dir: Path) -> str:
    return f"sqlite:///{(Path(var_dir) / 'registry.db').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``, configured for safe concurrent use (see the module docstring)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8, max_overflow=24,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            # Names are case-sensitive (runtime/names.py): name_prefix is, as on PostgreSQL.
            cursor.execute("PRAGMA case_sensitive_like=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode:  # "" for single-statement reads (see Store.snapshot)
                connection.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if url.startswith("postgresql"):
        # No pre-ping (a round trip per checkout): a connection found dead is invalidated by
        # SQLAlchemy and the call retried once on a fresh one (Store.snapshot / Store.write).
        return create_engine(url, pool_size=10, max_overflow=30)
    raise ValueError("database_url must start with sqlite:/// or postgresql+psycopg://")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default; no alembic.ini needed), in one
    transaction.

    On SQLite, Alembic's batch mode changes a table by copying it and dropping the old one, which
    foreign keys refuse while rows point at it; so foreign keys are off during the migration (a
    pragma that only counts outside a transaction) and ``PRAGMA foreign_key_check`` must find
    nothing broken before the migration commits.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        raw = connection.connection.driver_connection if sqlite else None
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the schema migration would break foreign keys; nothing was changed")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


class Store:
    """The database behind the registry: sessions for reads, retried transactions for writes,
    and the read cache that every committed write invalidates (see read_cache.py)."""

    def __init__(self, url: str, *, max_attempts: int = 12, cache_entries: int = 10_000) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.dialect == "sqlite" else self.engine
        )
        # Single-statement reads need no transaction: one SELECT is its own consistent snapshot
        # (SQLite in WAL mode, PostgreSQL in autocommit), which saves BEGIN/ROLLBACK round trips.
        self._snapshot_engine = (
            self.engine.execution_options(sqlite_begin="") if self.dialect == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._max_attempts = max_attempts
        self.group_commit = GroupCommit(self._run_group)
        self.cache = ReadCache(cache_entries, change_watch_for(url, self.dialect, self._listener_connection))

    def _listener_connection(self):
        """A new DB-API connection outside the pool, in autocommit (for LISTEN)."""
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        # TCP keepalives: a silently lost connection is noticed in seconds (the cache then goes off)
        kwargs.update(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
        connection = self.engine.dialect.loaded_dbapi.connect(*args, **kwargs)
        connection.autocommit = True
        return connection

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (a snapshot on PostgreSQL, a deferred transaction on SQLite)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A plain connection for reads of one statement each (no ORM session, no transaction)."""
        with self._snapshot_engine.connect() as connection:
            yield connection

    def read_once(self, read: Callable[[Connection], T]) -> T:
        """``read(connection)`` on a snapshot connection, once more on a fresh one if the
        pooled connection turns out to be dead (the database restarted)."""
        try:
            with self.snapshot() as connection:
                return read(connection)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self.snapshot() as connection:
            return read(connection)

    def write(self, change: Callable[[Session], T]) -> T:
        """Run ``change(session)`` in a transaction and commit it; its value or its exception.

        Writes that arrive together share one transaction (group commit, group_commit.py);
        each caller still gets only its own result or error. ``change`` may be run more than once
        (a conflict retried, or another change of its group failing), so it must not have side
        effects outside the session (blobs are written before, and cleaned up after, by the caller).
        """
        return self.group_commit.submit(change)

    def _run_group(self, changes: Sequence[Callable[[Session], T]]) -> list[Outcome]:
        """Commit ``changes`` in one transaction. A change that raises is rolled back with its
        group and left out, and the others run again without it; write conflicts with other
        processes are retried with jittered backoff. A connection found dead before the commit
        is replaced; lost *during* the commit, the outcome is unknown and the callers are told so
        (UNAVAILABLE: retry with the same idempotency key)."""
        outcomes: list[Outcome | None] = [None] * len(changes)
        pending = list(range(len(changes)))
        attempt = 0
        while pending:
            attempt += 1
            values: dict[int, T] = {}
            current, committing = pending[0], False
            try:
                with Session(self._write_engine, expire_on_commit=False) as session:
                    with session.begin():
                        for current in pending:
                            values[current] = changes[current](session)
                        committing = True
                for i in pending:
                    outcomes[i] = Outcome(values[i])
                pending = []
            except (IntegrityError, OperationalError, DBAPIError) as exc:
                if committing and (exc.connection_invalidated or not _retryable(exc)
                                   or attempt >= self._max_attempts):
                    error: BaseException = exc
                    if exc.connection_invalidated:  # the commit may or may not have happened
                        error = Unavailable("the connection to the database was lost while committing; "
                                            "the change may or may not be stored: retry with the same "
                                            "idempotency key, or look before retrying")
                    elif _retryable(exc):
                        error = Unavailable("the registry is busy with concurrent changes to the same "
                                            "resource; retry the call")
                    for i in pending:
                        outcomes[i] = Outcome(error=error)
                    pending = []
                elif committing:  # refused at commit (a conflict): nothing stored, the group runs again
                    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
                elif not _retryable(exc):
                    outcomes[current] = Outcome(error=exc)
                    pending.remove(current)
                elif attempt >= self._max_attempts:
                    log.warning("write conflict persisted after %d attempts: %s", attempt, exc)
                    outcomes[current] = Outcome(error=Unavailable(
                        "the registry is busy with concurrent changes to the same resource; retry the call"))
                    pending.remove(current)
                    attempt = 0
                elif not exc.connection_invalidated:
                    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
            except Exception as exc:  # noqa: BLE001 - this change's own error (NotFound, ...)
                outcomes[current] = Outcome(error=exc)
                pending.remove(current)
            finally:
                self.cache.invalidate()  # committed, or perhaps committed: nothing cached is trusted
        return outcomes  # type: ignore[return-value]

    def dispose(self) -> None:
        self.cache.close()
        self.engine.dispose()


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer took the key; the retry sees its row
    if exc.connection_invalidated:
        return True  # a pooled connection found dead (the database restarted); a fresh one is used
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message
