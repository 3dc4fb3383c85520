"""The record tables of a run directory, read in place through DuckDB: a page of rows, their count, the
values of a column with their counts (the filters), one record by id and where it went.

Every query is built from names checked against the table's own schema and from bound parameters, never from
a user's text: a filter or a search is a parameter, a column or table name is one the run's files declare. The
Parquet shards are scanned where they lie, so a page costs what its filters and its LIMIT cost, not the run's
size; nothing in the run directory is written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

PAGE = 100  # rows per page, as the Hugging Face dataset viewer shows them
FACET_LIMIT = 40  # a column with more distinct values than this is searched, not picked from a list
PREVIEW = 160  # characters of a long text column shown in a table cell


@dataclass(frozen=True)
class TableSpec:
    """One kind of record: where its files lie under the run directory and what a person filters it by."""

    name: str
    stage: str
    pattern: str  # glob under the run directory
    title: str
    text: tuple[str, ...] = ("text",)  # searched, and shown whole on the record page
    facets: tuple[str, ...] = ()  # picked from their values
    ranges: tuple[str, ...] = ()  # filtered by a minimum and a maximum


SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "corpus", "corpus", "corpus/data-*.parquet", "Raw corpus", facets=("source",), ranges=("n_bytes", "n_lines")
    ),
    TableSpec(
        "annotations",
        "annotations",
        "annotations/data-*.parquet",
        "Teacher's ratings",
        text=("answer",),
        facets=("score", "valid"),
        ranges=("score",),
    ),
    TableSpec(
        "filtered",
        "filtered",
        "filtered/data-*.parquet",
        "Kept by the classifier",
        facets=("source",),
        ranges=("edu_score", "n_bytes"),
    ),
    TableSpec(
        "textbook",
        "textbook",
        "textbook/data-*.parquet",
        "Textbook",
        facets=("topic", "audience", "style", "kind"),
        ranges=("code_blocks",),
    ),
    TableSpec(
        "exercises",
        "exercises",
        "exercises/data-*.parquet",
        "Exercises",
        text=("text", "tests"),
        facets=("topic", "audience", "style", "constraint", "verified", "repairs"),
        ranges=("mutation_score", "mutants", "repairs"),
    ),
    TableSpec(
        "clean", "clean", "clean/data-*.parquet", "Clean training data", text=("text",), facets=("kind", "source")
    ),
    TableSpec(
        "removed", "clean", "clean/removed.parquet", "Removed by clean", text=("id", "of"), facets=("reason", "source")
    ),
    TableSpec(
        "flags",
        "clean",
        "clean/benchmark_flags.parquet",
        "Benchmark look-alikes",
        text=("id", "task_id"),
        facets=("detector", "benchmark", "source"),
        ranges=("score",),
    ),
)
BY_NAME = {s.name: s for s in SPECS}
# Where a record's text is, by the stage its id came from (removed.parquet's `source`).
TEXT_SOURCES = ("exercises", "textbook", "filtered", "corpus")


@dataclass
class Table:
    spec: TableSpec
    files: list[str]
    columns: dict[str, str]  # name -> DuckDB type

    @property
    def scan(self) -> str:
        # Paths come from the run directory's own listing; quotes inside one are doubled, as SQL wants.
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in self.files)
        return f"read_parquet([{listed}])"


@dataclass
class Query:
    """A page request: filters by column, ranges, a search, an order and an offset (all checked, all bound)."""

    equals: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    search: str = ""
    order: str = ""
    descending: bool = False
    offset: int = 0


class RunTables:
    """The tables one run directory has. One DuckDB connection; each request gets its own cursor."""

    def __init__(self, run_dir: Path, memory_limit: str = "256MB") -> None:
        self.run_dir = run_dir.resolve()
        self._db = duckdb.connect(config={"memory_limit": memory_limit, "threads": 2})
        self._lock = threading.Lock()
        self._facets: dict[tuple[str, str], list[tuple[Any, int]]] = {}
        self.tables: dict[str, Table] = {}
        for spec in SPECS:
            files = sorted(str(p) for p in self.run_dir.glob(spec.pattern) if p.is_file())
            if not files:
                continue
            try:
                described = self._cursor().execute(f"DESCRIBE SELECT * FROM {Table(spec, files, {}).scan}").fetchall()
            except duckdb.Error:
                continue  # a half-written shard: the overview says the stage is incomplete
            self.tables[spec.name] = Table(spec, files, {row[0]: row[1] for row in described})

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._db.cursor()

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def _where(self, table: Table, query: Query) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for col, value in query.equals.items():
            if col in table.columns:
                clauses.append(f'CAST("{col}" AS VARCHAR) = ?')
                params.append(value)
        for col, (lo, hi) in query.ranges.items():
            if col in table.columns and lo is not None:
                clauses.append(f'"{col}" >= ?')
                params.append(lo)
            if col in table.columns and hi is not None:
                clauses.append(f'"{col}" <= ?')
                params.append(hi)
        if query.search:
            cols = [c for c in ("id", *table.spec.text) if c in table.columns]
            clauses.append("(" + " OR ".join(f'contains(lower("{c}"), ?)' for c in cols) + ")")
            params += [query.search.lower()] * len(cols)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def page(self, name: str, query: Query) -> tuple[list[dict[str, Any]], int]:
        """(the rows of one page, long text cut to a preview; how many rows match)."""
        table = self.tables[name]
        where, params = self._where(table, query)
        shown = [
            f'left("{c}", {PREVIEW}) AS "{c}"' if t == "VARCHAR" and c in (*table.spec.text, "answer") else f'"{c}"'
            for c, t in table.columns.items()
        ]
        order = ""
        if query.order in table.columns:
            order = f' ORDER BY "{query.order}" {"DESC" if query.descending else "ASC"} NULLS LAST'
        cur = self._cursor()
        total = cur.execute(f"SELECT count(*) FROM {table.scan}{where}", params).fetchone()[0]
        sql = f"SELECT {', '.join(shown)} FROM {table.scan}{where}{order} LIMIT {PAGE} OFFSET ?"
        cur.execute(sql, [*params, max(0, int(query.offset))])
        return _dicts(cur), int(total)

    def facet(self, name: str, column: str) -> list[tuple[Any, int]]:
        """A column's values and their counts, most common first; empty when it has too many to pick from."""
        key = (name, column)
        if key not in self._facets:
            table = self.tables[name]
            rows = (
                self._cursor()
                .execute(
                    f'SELECT CAST("{column}" AS VARCHAR) AS v, count(*) AS n FROM {table.scan} GROUP BY v '
                    f"ORDER BY n DESC, v LIMIT {FACET_LIMIT + 1}"
                )
                .fetchall()
            )
            self._facets[key] = [] if len(rows) > FACET_LIMIT else rows
        return self._facets[key]

    def record(self, name: str, record_id: str) -> dict[str, Any] | None:
        """The whole record `record_id` of table `name` (its first row with that id)."""
        rows = self.rows_with(name, "id", record_id, limit=1)
        return rows[0] if rows else None

    def rows_with(self, name: str, column: str, value: str, limit: int = 50) -> list[dict[str, Any]]:
        """Rows of table `name` whose `column` is `value`."""
        table = self.tables.get(name)
        if table is None or column not in table.columns:
            return []
        return _dicts(self._cursor().execute(f'SELECT * FROM {table.scan} WHERE "{column}" = ? LIMIT {limit}', [value]))

    def count(self, name: str, column: str | None = None, value: str | None = None) -> int:
        table = self.tables.get(name)
        if table is None:
            return 0
        if column is None:
            return int(self._cursor().execute(f"SELECT count(*) FROM {table.scan}").fetchone()[0])
        sql = f'SELECT count(*) FROM {table.scan} WHERE CAST("{column}" AS VARCHAR) = ?'
        return int(self._cursor().execute(sql, [value]).fetchone()[0])

    def lineage(self, record_id: str) -> list[dict[str, Any]]:
        """Where a record went, stage by stage: each table that holds its id, and why clean removed it."""
        steps = []
        for spec in SPECS:
            for row in self.rows_with(spec.name, "id", record_id, limit=5):
                step = {"table": spec.name, "title": spec.title}
                for key in ("score", "edu_score", "reason", "of", "benchmark", "task_id", "detector", "verified"):
                    if key in row and row[key] is not None:
                        step[key] = row[key]
                steps.append(step)
        return steps

    def text_of(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """(the table, the record) of the first stage that holds `record_id`'s text."""
        for name in TEXT_SOURCES:
            row = self.record(name, record_id)
            if row is not None:
                return name, row
        return None


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as dicts by column name."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
