"""The results store of a resumable experiment (a study, a collapse experiment): one
SQLite file, ``results.sqlite``. It sits below the orchestrators that share it.

Tables:
- ``evals``: one row per (model, data) evaluation, keyed by a readable string such as
  ``base|general:test``, holding the summary as JSON; an evaluation is never redone.
- ``runs``: one row per adaptation run with its status and result as JSON.
- ``metrics``: the training metrics rows of each run (for curves in the report).
- ``meta``: study-level values (the resolved config, timings).

Every write is its own transaction, so a study killed at any point leaves a store
that the next invocation resumes from.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 120.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS evals (key TEXT PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (name TEXT PRIMARY KEY, status TEXT NOT NULL, record TEXT NOT NULL,
                                 position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (run TEXT NOT NULL, idx INTEGER NOT NULL, row TEXT NOT NULL,
                                    PRIMARY KEY (run, idx));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultsStore:
    """Typed access to ``results.sqlite``.

    >>> store = ResultsStore("studies/default/results.sqlite")
    >>> store.get_eval("base|general:test")
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Several processes (Ray workers of one study) may write at once: WAL lets readers
        # run beside a writer, and a writer waits up to BUSY_TIMEOUT_S for another's lock
        # instead of failing with "database is locked". WAL needs all writers on one host.
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _put(self, sql: str, args: tuple) -> None:
        with self.db:  # commits, or rolls back on error
            self.db.execute(sql, args)

    def get_eval(self, key: str) -> dict | None:
        row = self.db.execute("SELECT summary FROM evals WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_eval(self, key: str, summary: dict) -> None:
        self._put("INSERT OR REPLACE INTO evals VALUES (?, ?)", (key, json.dumps(summary)))

    def get_run(self, name: str) -> dict | None:
        row = self.db.execute("SELECT status, record FROM runs WHERE name = ?", (name,)).fetchone()
        return {"status": row[0], **json.loads(row[1])} if row else None

    def finished_run(self, name: str) -> dict | None:
        """The run's record if it finished (status ``done``), else None."""
        run = self.get_run(name)
        return run if run and run["status"] == "done" else None

    def put_run(self, name: str, status: str, record: dict, position: int) -> None:
        self._put("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", (name, status, json.dumps(record), position))

    def eval_keys(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT key FROM evals ORDER BY key").fetchall()]

    def delete_run(self, name: str) -> None:
        """A run's record, metrics and the evaluations of its model (keys ``name|...``)."""
        with self.db:
            self.db.execute("DELETE FROM runs WHERE name = ?", (name,))
            self.db.execute("DELETE FROM metrics WHERE run = ?", (name,))
            self.db.execute("DELETE FROM evals WHERE substr(key, 1, ?) = ?", (len(name) + 1, f"{name}|"))

    def runs(self, status: str | None = None) -> list[dict]:
        rows = self.db.execute("SELECT name, status, record FROM runs ORDER BY position").fetchall()
        return [{"name": n, "status": s, **json.loads(r)} for n, s, r in rows if status in (None, s)]

    def put_metrics(self, run: str, rows: list[dict]) -> None:
        with self.db:
            self.db.execute("DELETE FROM metrics WHERE run = ?", (run,))
            self.db.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                                [(run, i, json.dumps(r)) for i, r in enumerate(rows)])

    def metrics(self, run: str) -> list[dict]:
        rows = self.db.execute("SELECT row FROM metrics WHERE run = ? ORDER BY idx", (run,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def set_meta(self, key: str, value) -> None:
        self._put("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default
