"""The embedded, persistent vector store: one SQLite file, sqlite-vec for exact search.

Layout (one file for every namespace):
- `namespaces`: each namespace that holds entries, with its dimension and embeddings key;
- `entries`: id, text and metadata (JSON) of every entry, keyed by (namespace, id);
- `vec_<dimension>`: a sqlite-vec `vec0` table per dimension, the namespace as its partition key,
  so a search scans only its own namespace's vectors. Rows share their rowid with `entries`.

Vectors are stored unit length and searched by Euclidean distance, which orders them as cosine
similarity does (cosine = 1 - distance² / 2) and which sqlite-vec computes faster than its cosine
distance. Large pages (64 KiB) and memory-mapped reads cut the cost of scanning the vector chunks.

SQLite connections belong to a thread: writes go through one writer thread (one transaction per
call, so an add is all or nothing), searches through a small pool of reader threads, each with its
own connection; in WAL mode readers see the last committed state and never wait for the writer.
The stdlib `sqlite3` of this Python cannot load extensions; `sqlean` (the same module, built with
them enabled) can.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlean  # no type information shipped
import sqlite_vec

from streamwise.engine.retrieval import Document, Scored
from streamwise.vectors import checks
from streamwise.vectors.checks import Batch, Held
from streamwise.vectors.scope import Scope

T = TypeVar("T")
# sqlean is the stdlib module built with extension loading: its connections are typed as the stdlib's.
Connection = sqlite3.Connection

FILE_NAME = "vectors.sqlite3"
MAX_K = 4096  # sqlite-vec's limit for one KNN query
_CHUNK = 500  # ids per `IN (...)`: well under SQLite's limit on bound parameters
_SCHEMA = """
create table if not exists namespaces(
    name text primary key,
    dimension integer not null,
    embedding_key text
);
create table if not exists entries(
    rowid integer primary key,
    namespace text not null,
    id text not null,
    content text not null,
    metadata text not null,
    unique(namespace, id)
);
"""


def _connect(path: Path) -> Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Autocommit mode: transactions are begun and ended explicitly. Used by one thread at a time
    # (its own); closed from the closing thread once the pools have stopped.
    conn: Connection = sqlean.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("pragma busy_timeout = 10000")
    conn.execute("pragma page_size = 65536")  # takes effect only while the file is new
    conn.execute("pragma journal_mode = wal")
    conn.execute("pragma synchronous = normal")  # WAL stays consistent; a power cut loses the last commit
    conn.execute("pragma mmap_size = 1073741824")
    # Checkpoint every 4 MiB of log (64 pages of 64 KiB; the default, 1000 pages, assumes 4 KiB
    # pages): once the log is copied back, searches read the file through mmap, not the log.
    conn.execute("pragma wal_autocheckpoint = 64")
    return conn


class SqliteVectorDatabase:
    """One SQLite file of vectors. Nothing is opened or created until the first call."""

    def __init__(self, path: Path, *, readers: int = 2) -> None:
        self.path = path
        self._readers_count = readers
        self._local = threading.local()
        self._lock = threading.Lock()  # pools and the list of connections: held for microseconds
        self._schema_lock = threading.Lock()
        self._connections: list[Connection] = []
        self._schema_ready = False
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._closed = False

    def namespace(self, name: str) -> SqliteNamespace:
        return SqliteNamespace(self, name)

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            pools = [pool for pool in (self._writer, self._readers) if pool is not None]
            self._writer = self._readers = None
        for pool in pools:
            await asyncio.to_thread(pool.shutdown, wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- threads and connections --------------------------------------------------------------

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await self._run("writer", work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run("readers", work)

    async def _run(self, which: str, work: Callable[[Connection], T]) -> T:
        pool = self._pool(which)
        return await asyncio.get_running_loop().run_in_executor(pool, self._in_thread, work)

    def _pool(self, which: str) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the vector database is closed")
            if which == "writer":
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(1, thread_name_prefix="vectors-sqlite-writer")
                return self._writer
            if self._readers is None:
                self._readers = ThreadPoolExecutor(
                    self._readers_count, thread_name_prefix="vectors-sqlite-reader"
                )
            return self._readers

    def _in_thread(self, work: Callable[[Connection], T]) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
        if not self._schema_ready:
            with self._schema_lock:
                if not self._schema_ready:
                    conn.executescript(_SCHEMA)
                    self._schema_ready = True
        return work(conn)


class SqliteNamespace:
    """One namespace of a `SqliteVectorDatabase`: a `Backend`."""

    def __init__(self, database: SqliteVectorDatabase, name: str) -> None:
        self.database = database
        self.name = name

    async def add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        batch = checks.batch(scope, ids, documents, vectors)
        if not batch.ids:
            return
        # JSON is made here, off the writer thread, which every namespace shares.
        metadata = [json.dumps(dict(d.metadata), default=str, ensure_ascii=False) for d in batch.documents]
        await self.database.write(lambda conn: self._add(conn, scope, batch, metadata))

    def _add(self, conn: Connection, scope: Scope, batch: Batch, metadata: list[str]) -> None:
        with _transaction(conn):
            held = _held(conn, self.name)
            checks.fits(scope, held, batch.dimension)
            table = _vector_table(conn, batch.dimension)
            if held is None:
                conn.execute(
                    "insert or replace into namespaces(name, dimension, embedding_key) values (?, ?, ?)",
                    (self.name, batch.dimension, scope.embedding_key),
                )
            else:
                _delete_ids(conn, self.name, table, batch.ids)
            first = conn.execute("select coalesce(max(rowid), 0) + 1 from entries").fetchone()[0]
            rowids = range(first, first + len(batch.ids))
            conn.executemany(
                "insert into entries(rowid, namespace, id, content, metadata) values (?, ?, ?, ?, ?)",
                (
                    (rowid, self.name, entry_id, document.page_content, meta)
                    for rowid, entry_id, document, meta in zip(
                        rowids, batch.ids, batch.documents, metadata, strict=True
                    )
                ),
            )
            conn.executemany(
                f"insert into {table}(rowid, namespace, embedding) values (?, ?, ?)",
                ((rowid, self.name, row.tobytes()) for rowid, row in zip(rowids, batch.vectors, strict=True)),
            )

    async def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        if ids:
            await self.database.write(lambda conn: self._delete(conn, [str(entry_id) for entry_id in ids]))

    def _delete(self, conn: Connection, ids: list[str]) -> None:
        with _transaction(conn):
            held = _held(conn, self.name)
            if held is None:
                return
            _delete_ids(conn, self.name, f"vec_{held.dimension}", ids)
            if _count(conn, self.name) == 0:
                # An empty namespace is bound to nothing: the next add may bring another model.
                conn.execute("delete from namespaces where name = ?", (self.name,))

    async def search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        query = checks.unit_query(scope, vector)
        if k <= 0:
            return []
        return await self.database.read(lambda conn: self._search(conn, scope, query, k, where))

    def _search(
        self,
        conn: Connection,
        scope: Scope,
        query: np.ndarray[Any, np.dtype[np.float32]],
        k: int,
        where: Mapping[str, Any] | None,
    ) -> list[Scored]:
        held = _held(conn, self.name)
        checks.fits(scope, held, int(query.shape[0]), query=True)
        if held is None:
            return []
        table = f"vec_{held.dimension}"
        clause, params = _filter_clause(where)
        if clause:
            clause = f"and rowid in (select rowid from entries where namespace = ? {clause})"
        rows = conn.execute(
            f"""
            with knn as (
                select rowid, distance, embedding from {table}
                where embedding match ? and k = ? and namespace = ?
                {clause}
            )
            select knn.distance, knn.embedding, entries.content, entries.metadata
            from knn join entries on entries.rowid = knn.rowid
            order by knn.distance
            """,
            (query.tobytes(), min(k, MAX_K), self.name, *((self.name, *params) if clause else ())),
        ).fetchall()
        return [
            Scored(
                Document(content, json.loads(metadata)),
                1.0 - float(distance) ** 2 / 2.0,
                np.frombuffer(embedding, dtype=np.float32).tolist(),
            )
            for distance, embedding, content, metadata in rows
        ]

    async def count(self, scope: Scope) -> int:
        return await self.database.read(lambda conn: _count(conn, self.name))

    async def close(self) -> None:
        """A namespace shares its database, which is closed as a whole."""


class _transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on any exception: one call is all or nothing."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("begin immediate")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.conn.execute("commit" if kind is None else "rollback")


def _held(conn: Connection, namespace: str) -> Held | None:
    row = conn.execute(
        "select dimension, embedding_key from namespaces where name = ?", (namespace,)
    ).fetchone()
    return None if row is None else Held(int(row[0]), row[1])


def _count(conn: Connection, namespace: str) -> int:
    return int(conn.execute("select count(*) from entries where namespace = ?", (namespace,)).fetchone()[0])


def _vector_table(conn: Connection, dimension: int) -> str:
    table = f"vec_{int(dimension)}"
    # 256 rows per chunk: a namespace's first chunk is allocated whole, so small namespaces stay small.
    conn.execute(
        f"create virtual table if not exists {table} using vec0("
        f"namespace text partition key, embedding float[{int(dimension)}], chunk_size=256)"
    )
    return table


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _delete_ids(conn: Connection, namespace: str, table: str, ids: Sequence[str]) -> None:
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        rowids = [
            row[0]
            for row in conn.execute(
                f"select rowid from entries where namespace = ? and id in ({marks})", (namespace, *chunk)
            )
        ]
        if not rowids:
            continue
        rowid_marks = ", ".join("?" * len(rowids))
        conn.execute(f"delete from {table} where rowid in ({rowid_marks})", rowids)
        conn.execute(f"delete from entries where rowid in ({rowid_marks})", rowids)


def _filter_clause(where: Mapping[str, Any] | None) -> tuple[str, list[object]]:
    """SQL keeping entries whose metadata holds each key with that value (JSON equality).

    `json_each` names keys as they are (no JSON-path quoting) and tells true/false from 1/0.
    """
    if not where:
        return "", []
    parts: list[str] = []
    params: list[object] = []
    for key, wanted in where.items():
        exists = "exists (select 1 from json_each(entries.metadata) as j where j.key = ? and "
        if isinstance(wanted, bool):
            parts.append(exists + "j.type = ?)")
            params += [key, "true" if wanted else "false"]
        elif isinstance(wanted, int | float):
            parts.append(exists + "j.type in ('integer', 'real') and j.atom = ?)")
            params += [key, wanted]
        else:
            parts.append(exists + "j.type = 'text' and j.atom = ?)")
            params += [key, str(wanted)]
    return "and " + " and ".join(parts), params
