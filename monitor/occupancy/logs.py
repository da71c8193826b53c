"""The occupancy log: one row per emission, written as each emission closes.

The format follows the extension: ``.csv``, ``.jsonl`` or ``.parquet``. Every format holds the
columns of :data:`~monitor.occupancy.emission.LOG_COLUMNS` in that order (a contract:
``../shared/DESIGN.md``), with the values of :meth:`Emission.row`, so :func:`read_log` returns the
same rows from each.

Times: ISO 8601 UTC strings with microseconds (``2026-11-28T21:03:39.123456Z``) in CSV and JSONL;
``timestamp[us, tz=UTC]`` in Parquet, the same instant to the same microsecond in Parquet's own
type, so that pandas, polars and DuckDB filter and subtract them without parsing strings.
:func:`read_log` gives the ISO strings back from every format.

Crash safety. CSV and JSONL rows are written and flushed to the operating system as each emission
closes, so a killed run (even ``SIGKILL``) loses only the emissions still open; a row cut short by
the kill is dropped when the log is read. Parquet cannot be appended to row by row: a Parquet
file is unreadable until its footer, written last, is there, so row groups streamed into it
during a run would all be lost with it. A ``.parquet`` log is therefore written in two steps:

1. during the run, every row goes to a JSONL journal beside it, ``NAME.parquet.journal.jsonl``,
   flushed row by row exactly as a ``.jsonl`` log is;
2. on :meth:`OccupancyLog.close` the journal becomes one Parquet file (row groups of up to a
   million rows, written to a temporary file, synced and renamed onto ``NAME.parquet``), and the
   journal is removed.

So ``NAME.parquet`` is never half-written: it is the whole log or it is not there. After a killed
run the journal holds every emission closed before the kill; :func:`read_log` (and therefore
``prmnet report``) reads it whenever it exists, and any JSON-lines reader can too. A stale
``NAME.parquet`` from an earlier run is removed when a new run opens the log, so it is never
mistaken for this one's.

Writers are safe to call from several threads (a lock guards each), though the pipeline writes from
its processing thread only. Do not call them from a signal handler (it could interrupt a
``write`` holding the lock): let the handler ask the processing thread to stop, and that thread
closes the open emissions, writes them and closes the log. Rows reach the OS at once (a killed
process loses none); the file is synced to disk only on ``close()``, so a power cut may lose
what the OS had not yet written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from monitor.errors import DeviceError, InputError
from monitor.occupancy.emission import LOG_COLUMNS, Emission

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "LOG_SUFFIXES",
    "OccupancyLog",
    "journal_path",
    "open_log",
    "read_emissions",
    "read_log",
    "validate_log_path",
    "validate_output_path",
    "write_file_atomically",
]

log = logging.getLogger(__name__)

LOG_SUFFIXES = (".csv", ".jsonl", ".parquet")

Row = dict[str, Any]

_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_COLUMNS = ("start_time", "end_time")
_COLUMN_TYPES: dict[str, Callable[[Any], Any]] = {
    "start_time": str,
    "end_time": str,
    "start_sample": int,
    "sample_count": int,
    "freq_low_hz": float,
    "freq_high_hz": float,
    "label": str,
    "confidence": float,
    "power_db": float,
}


class OccupancyLog(ABC):
    """A log being written: :meth:`write` each emission as it closes, :meth:`close` at the end.

    Attributes:
        path: the log the user named.
        rows: emissions written so far.
    """

    def __init__(self, path: Path, file_path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file_path = file_path
        self._lock = threading.Lock()
        try:
            self._file: TextIO | None = open(file_path, "w", encoding="utf-8", newline="")
            self._file.write(self._header())
            self._file.flush()
        except OSError as exc:
            raise InputError(f"cannot write log {file_path}: {exc.strerror or exc}") from None

    def write(self, emission: Emission) -> None:
        """Append one emission's row and hand it to the OS at once.

        Raises:
            ValueError: if the log is closed.
            DeviceError: if the write fails (a full disk, say).
        """
        line = self._line(emission.row())
        with self._lock:
            if self._file is None:
                raise ValueError(f"log {self.path} is closed")
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                raise DeviceError(f"cannot write log {self._file_path}: "
                                  f"{exc.strerror or exc}") from None
            self.rows += 1

    def close(self) -> None:
        """Sync the log to disk and finish it; a second call does nothing.

        Raises:
            DeviceError: if the log cannot be synced or finished.
        """
        with self._lock:
            if self._file is None:
                return
            file, self._file = self._file, None
            try:
                with file:
                    file.flush()
                    os.fsync(file.fileno())
                self._finish()
            except OSError as exc:
                raise DeviceError(f"cannot finish log {self.path}: {exc.strerror or exc}") from None

    def __enter__(self) -> OccupancyLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _header(self) -> str:
        """Text written when the file is created."""
        return ""

    @abstractmethod
    def _line(self, row: Row) -> str:
        """One row as a line of text, newline included."""

    def _finish(self) -> None:
        """Work once the file is closed and synced: the Parquet log converts its journal here."""
        log.debug("closed log %s with %d emissions", self.path, self.rows)


class _CsvLog(OccupancyLog):
    def _header(self) -> str:
        return _csv_line(LOG_COLUMNS)

    def _line(self, row: Row) -> str:
        return _csv_line(row.values())


class _JsonlLog(OccupancyLog):
    def _line(self, row: Row) -> str:
        return json.dumps(row, separators=(",", ":")) + "\n"


class _ParquetLog(_JsonlLog):
    """A JSONL journal during the run, one Parquet file on close (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(f"cannot replace log {path}: {exc.strerror or exc}") from None
        super().__init__(path, journal_path(path))

    def _finish(self) -> None:
        rows = _parse_jsonl(_read_text(self._file_path), self._file_path)
        try:
            _write_parquet(rows, self.path)
        except DeviceError as exc:
            raise DeviceError(f"{exc}; its rows are in {self._file_path}") from None
        self._file_path.unlink()
        super()._finish()


_WRITERS: dict[str, Callable[[Path], OccupancyLog]] = {
    ".csv": lambda path: _CsvLog(path, path),
    ".jsonl": lambda path: _JsonlLog(path, path),
    ".parquet": _ParquetLog,
}


def open_log(path: str | Path) -> OccupancyLog:
    """Create the log at ``path`` (replacing any old one), its format chosen by the extension.

    Call it when the run starts writing, after every other input has been checked: the file is
    created here. Check the path earlier with :func:`validate_log_path`.

    Raises:
        InputError: for an unknown extension or a path that cannot be written.
    """
    p = validate_log_path(path)
    return _WRITERS[p.suffix.lower()](p)


def journal_path(path: str | Path) -> Path:
    """Where a ``.parquet`` log keeps its rows until it is closed."""
    p = Path(path)
    return p.with_name(p.name + ".journal.jsonl")


def validate_log_path(path: str | Path) -> Path:
    """Check, before anything is processed, that a log can be written at ``path``; create nothing.

    Raises:
        InputError: for an extension other than ``.csv``, ``.jsonl`` or ``.parquet``, a missing
            or unwritable folder, or ``.parquet`` without pyarrow installed.
    """
    p = Path(path)
    if p.suffix.lower() not in LOG_SUFFIXES:
        raise InputError(
            f"cannot tell the format of log {p}: its extension must be .csv, .jsonl or .parquet"
        )
    if p.suffix.lower() == ".parquet":
        _require_pyarrow()
    return validate_output_path(p, "log")


def validate_output_path(path: str | Path, what: str) -> Path:
    """Check that a file can be written at ``path`` (its folder exists and takes new files).

    A probe file is created in the folder and removed at once; ``path`` itself is not touched.

    Args:
        path: the file to be written.
        what: what it is, for the message (``"log"``, ``"stats file"``, ...).

    Raises:
        InputError: naming the path and what is wrong with it.
    """
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder; name a file")
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"cannot write {what} {p}: {folder} {problem}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".prmnet-write-check-"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write {what} {p}: {folder} is not writable "
                         f"({exc.strerror or exc})") from None
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"cannot write {what} {p}: the file exists and is read-only")
    return p


def write_file_atomically(path: str | Path, data: bytes, what: str) -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it, and rename it onto ``path``.

    Readers see the old file or the whole new one, never a part; the file gets the usual
    permissions (0666 less the umask).

    Raises:
        DeviceError: if it cannot be written (the temporary file is removed).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise DeviceError(f"cannot write {what} {p}: {exc.strerror or exc}") from None


def read_log(path: str | Path) -> list[Row]:
    """The rows of an occupancy log in any of the three formats, typed as :meth:`Emission.row`.

    For ``.parquet``, the journal is read whenever it exists: the run that writes the log is still
    going, or was killed before it could finish the Parquet file. A last line cut short by a kill
    is dropped.

    Raises:
        InputError: for a missing file, an unknown extension, or a file that is not an occupancy
            log, saying which.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in LOG_SUFFIXES:
        raise InputError(f"cannot tell the format of log {p}: its extension must be .csv, "
                         ".jsonl or .parquet")
    if suffix == ".parquet":
        journal = journal_path(p)
        if journal.is_file():
            rows = _parse_jsonl(_read_text(journal), journal)
            log.warning("%s is still being written or its run was killed; read %d emissions "
                        "from its journal %s", p, len(rows), journal.name)
            return rows
        return _read_parquet(p)
    text = _read_text(p)
    return _parse_csv(text, p) if suffix == ".csv" else _parse_jsonl(text, p)


def read_emissions(path: str | Path) -> list[Emission]:
    """:func:`read_log` as :class:`Emission` objects (times back to POSIX seconds).

    Raises:
        InputError: as :func:`read_log`, and for a time not in the log's ISO 8601 form.
    """
    emissions = []
    for n, row in enumerate(read_log(path), start=1):
        values = dict(row)
        for name in _TIME_COLUMNS:
            try:
                moment = datetime.strptime(row[name], _ISO_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                raise InputError(f"{path}: emission {n} has {name} {row[name]!r}, expected "
                                 "ISO 8601 UTC such as 2026-11-28T21:03:39.123456Z") from None
            values[name] = moment.timestamp()
        emissions.append(Emission(**values))
    return emissions


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _read_text(p: Path) -> str:
    if not p.is_file():
        raise InputError(f"no such log: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read log {p}: {exc}") from None
    if text and not text.endswith("\n"):
        log.warning("%s ends in a partial line (the run was killed while writing it); "
                    "dropped it", p)
        text = text[: text.rfind("\n") + 1]
    return text


def _typed_row(values: Mapping[str, Any], where: str) -> Row:
    row = {}
    for name in LOG_COLUMNS:
        kind = _COLUMN_TYPES[name]
        try:
            row[name] = kind(values[name])
        except (TypeError, ValueError):
            raise InputError(f"{where}: {name} is {values[name]!r}, not "
                             f"{'a number' if kind is not str else 'text'}") from None
    return row


def _parse_csv(text: str, p: Path) -> list[Row]:
    records = csv.reader(io.StringIO(text))
    header = next(records, None)
    if header is None:
        raise InputError(f"log {p} is empty; not even a header")
    if tuple(header) != LOG_COLUMNS:
        raise InputError(f"{p} is not an occupancy log: its columns are {','.join(header)}, "
                         f"expected {','.join(LOG_COLUMNS)}")
    rows = []
    for n, record in enumerate(records, start=2):
        if len(record) != len(LOG_COLUMNS):
            raise InputError(f"{p}:{n}: {len(record)} fields, expected {len(LOG_COLUMNS)}")
        rows.append(_typed_row(dict(zip(LOG_COLUMNS, record, strict=True)), f"{p}:{n}"))
    return rows


def _parse_jsonl(text: str, p: Path) -> list[Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}:{n} is not JSON: {exc.msg}") from None
        if not isinstance(values, dict):
            raise InputError(f"{p}:{n} is not a JSON object")
        missing = [name for name in LOG_COLUMNS if name not in values]
        if missing:
            raise InputError(f"{p}:{n} is not an occupancy log row: no {', '.join(missing)}")
        rows.append(_typed_row(values, f"{p}:{n}"))
    return rows


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("Parquet logs need pyarrow: pip install 'prmnet-monitor[parquet]', "
                         "or log to .csv or .jsonl") from None


def _parquet_schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {str: pa.string(), int: pa.int64(), float: pa.float64()}
    time = pa.timestamp("us", tz="UTC")
    return pa.schema([
        (name, time if name in _TIME_COLUMNS else kinds[_COLUMN_TYPES[name]])
        for name in LOG_COLUMNS
    ])


def _write_parquet(rows: list[Row], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    arrays = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if field.name in _TIME_COLUMNS:
            arrays.append(pa.array(values, type=pa.string()).cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink)
    write_file_atomically(path, sink.getvalue().to_pybytes(), "log")


def _read_parquet(p: Path) -> list[Row]:
    _require_pyarrow()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not p.is_file():
        raise InputError(f"no such log: {p} (and no journal {journal_path(p).name} beside it)")
    try:
        table = pq.read_table(p)
    except (OSError, pa.ArrowException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p} is not a readable Parquet file: {reason}") from None
    if tuple(table.column_names) != LOG_COLUMNS:
        raise InputError(f"{p} is not an occupancy log: its columns are "
                         f"{','.join(table.column_names)}, expected {','.join(LOG_COLUMNS)}")
    columns = {}
    for name in LOG_COLUMNS:
        column = table[name]
        if name in _TIME_COLUMNS and pa.types.is_timestamp(column.type):
            utc = column.cast(pa.timestamp("us", tz="UTC"))
            column = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
        columns[name] = column.to_pylist()
    return [
        _typed_row({name: columns[name][i] for name in LOG_COLUMNS}, f"{p} row {i + 1}")
        for i in range(table.num_rows)
    ]
