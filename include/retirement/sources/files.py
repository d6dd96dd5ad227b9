"""A folder tree: CSV, JSON lines, Parquet and XLSX files read as tables, all else documents.

Dataset names are paths relative to the root (``exports/customers.csv``); an XLSX workbook
gives one dataset per sheet (``book.xlsx#Sheet1``): a ``DatasetId`` whose object is the path
and whose sheet is the sheet, so a file named ``report#2024.txt`` is never confused with a
sheet of ``report``. Symbolic links are not followed.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from retirement.errors import DeletionRefused, SourceError
from retirement.formats.digests import CHUNK, hash_fd
from retirement.model.ids import DatasetId
from retirement.sources.base import BATCH_ROWS, Column, DatasetRef, Named, Row, Source
from retirement.sources.capabilities import BackedUp, ObjectRemoval, PinnedObject
from retirement.sources.formats import (
    closing_batches,
    format_of,
    parquet_batches,
    read_rows,
    xlsx_sheets,
)
from retirement.sources.pinned import PinnedFile, PinnedReader

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pyarrow as pa

UNLINK_NOTE = (
    "Unlinking is 'clear', not 'purge': on SSDs and copy-on-write filesystems the blocks may "
    "survive until reused; the backup copy is what gets a cryptographic erase"
)


class _Opened:
    """A file opened inside the root: its folder's descriptor, its own, its leaf name."""

    def __init__(self, folder: int, fd: int, leaf: str) -> None:
        self.folder, self.fd, self.leaf = folder, fd, leaf

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.folder)


def open_inside(root: os.PathLike[str] | str, relative: str, *, where: str) -> _Opened | None:
    """Open ``root/relative`` without following any symbolic link; None if it is not there."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SourceError(f"{where}: {relative!r} is not a plain path inside the source root")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts[:-1]:
        try:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            os.close(folder)
            return None
        except OSError as exc:  # ELOOP: a link; ENOTDIR: a file where a folder was
            os.close(folder)
            raise SourceError(
                f"{where}: {part!r} on the way to {relative!r} is a symbolic link or not a "
                "folder: refused (a path must stay inside the source root)"
            ) from exc
        os.close(folder)
        folder = inner
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    except FileNotFoundError:
        os.close(folder)
        return None
    except OSError as exc:
        os.close(folder)
        raise SourceError(
            f"{where}: {relative!r} is a symbolic link: refused (not followed)"
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        os.close(folder)
        raise SourceError(f"{where}: {relative!r} is not a regular file")
    return _Opened(folder, fd, parts[-1])


class TabularObjects(Source):
    """Shared logic of sources whose datasets are files (a folder tree, an S3 prefix)."""

    def _open(self, path: str) -> IO[bytes]:
        raise NotImplementedError

    def _objects(self) -> list[tuple[str, int]]:
        """(relative name, size) of every object, sorted."""
        raise NotImplementedError

    def datasets(self) -> list[DatasetRef]:
        out: list[DatasetRef] = []
        for name, size in self._objects():
            if not self.wanted(name):
                continue
            fmt = format_of(name)
            if fmt == "xlsx":
                sheets = self._sheets(name)
                out += [DatasetRef(DatasetId(self.name, name, s), "table", size) for s in sheets]
            else:
                kind: Literal["table", "document"] = "table" if fmt else "document"
                out.append(DatasetRef(DatasetId(self.name, name), kind, size))
        return out

    def _split(self, dataset: Named) -> tuple[str, str | None, str | None]:
        """(path, sheet, tabular format or None for a document)."""
        ds = self.id_of(dataset)
        return ds.object, ds.sheet, "xlsx" if ds.sheet is not None else format_of(ds.object)

    def _sheets(self, path: str) -> list[str]:
        with self._open(path) as raw:
            return self._sheets_of(raw, path)

    def _rows(self, dataset: Named) -> Iterator[list[Any]]:
        path, sheet, fmt = self._split(dataset)
        if fmt is None:
            return iter(())
        where = f"source {self.name}: {path}"
        columns = None
        if fmt == "jsonl":
            from retirement.sources.jsonl_arrow import jsonl_keys  # pyarrow: imported when used

            with self._open(path) as raw:
                columns = jsonl_keys(raw, where)
        return self._stream(path, fmt, where, sheet, columns)

    def _stream(
        self, path: str, fmt: str, where: str, sheet: str | None, columns: list[str] | None
    ) -> Iterator[list[Any]]:
        with self._open(path) as raw:
            yield from read_rows(fmt, raw, where=where, sheet=sheet, columns=columns)

    def schema(self, dataset: Named) -> list[Column]:
        header = next(self._rows(dataset), None)
        return [Column(str(h), "text") for h in header or []]

    def count(self, dataset: Named) -> int:
        if self._split(dataset)[2] is None:
            return 1
        return max(sum(1 for _ in self._rows(dataset)) - 1, 0)

    def batches(self, dataset: Named, *, batch_rows: int = BATCH_ROWS) -> Iterator[list[Row]]:
        rows = self._rows(dataset)
        header = next(rows, None)
        if header is None:
            return
        batch: list[Row] = []
        for line, row in enumerate(rows, 2):
            if len(row) != len(header):
                raise SourceError(
                    f"source {self.name}: {self._split(dataset)[0]}: row {line} has "
                    f"{len(row)} fields, the header {len(header)}: every row needs one field "
                    "per column (a field left out or a delimiter inside an unquoted value); "
                    "fix the file before retiring it"
                )
            batch.append(tuple(row))
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch

    def arrow_batches(
        self, dataset: Named, batch_rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[list[pa.Array]] | None:
        """A Parquet, CSV, TSV or JSON-lines file's columns as Arrow arrays (a ColumnReader);
        None for other files, and files only the row path reads exactly (csv/jsonl_arrow)."""
        path, _sheet, fmt = self._split(dataset)
        if fmt == "parquet":
            return self._parquet_batches(path, batch_rows)
        if fmt in ("csv", "tsv"):
            return self._csv_batches(dataset, path, fmt)
        if fmt == "jsonl":
            from retirement.sources.jsonl_arrow import file_columns

            return file_columns(lambda: self._open(path), columns, f"source {self.name}: {path}")
        return None

    def _csv_batches(self, dataset: Named, path: str, fmt: str) -> Iterator[list[pa.Array]] | None:
        from retirement.sources.csv_arrow import csv_columns

        header = [str(h) for h in next(self._rows(dataset), None) or []]

        def row_error() -> None:
            for _ in self.batches(dataset):
                pass

        raw = self._open(path)
        where = f"source {self.name}: {path}"
        return closing_batches(
            csv_columns(raw, header, "\t" if fmt == "tsv" else ",", where, row_error), raw
        )

    def _parquet_batches(self, path: str, batch_rows: int) -> Iterator[list[pa.Array]]:
        try:
            with self._open(path) as raw:
                yield from parquet_batches(raw, batch_rows)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise SourceError(f"source {self.name}: {path}: cannot read as parquet: {exc}") from exc

    def digest(self, dataset: Named) -> tuple[int, str]:
        """(size, sha256) of the object holding ``dataset``, streamed."""
        h, size = hashlib.sha256(), 0
        with self._open(self._split(dataset)[0]) as raw:
            while chunk := raw.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        return size, h.hexdigest()

    def object_state(self, dataset: Named) -> dict[str, object]:
        """What a backup records of the object holding ``dataset``, to prove at deletion
        time that it is still that object."""
        raise NotImplementedError

    def _sheets_of(self, raw: IO[bytes], path: str) -> list[str]:
        try:
            return xlsx_sheets(raw)
        except Exception as exc:  # openpyxl's own errors, translated with the file named
            raise SourceError(
                f"source {self.name}: {path}: not a readable XLSX workbook: {exc}"
            ) from exc

    def open_bytes(self, dataset: Named) -> IO[bytes]:
        """The raw bytes of the object holding ``dataset`` (for backups of documents)."""
        return self._open(self._split(dataset)[0])


class FileSource(TabularObjects):
    """Every file under ``root``: an ObjectSource and ObjectDeleter (``sources.capabilities``).

    Deletion opens a file through its folders one by one from the root, never following a
    symbolic link (``O_NOFOLLOW`` at each step, ``openat``-style), so a folder swapped for a
    link between two attempts cannot lead it outside the root. The whole file is hashed
    through that descriptor and must have the size and SHA-256 the backup recorded; it is
    unlinked (through its folder's descriptor) only if it is still that same inode,
    unchanged. A workbook is one file for all its sheets: it is unlinked only when every
    sheet it had was backed up from this very file. Unlinking is *clear*, not *purge*."""

    def __init__(
        self,
        name: str,
        root: str | Path,
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(name, include=include, exclude=exclude)
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise SourceError(f"source {name}: {self.root} is not a directory")
        self._pins: dict[str, PinnedFile] = {}

    def _objects(self) -> list[tuple[str, int]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames.sort()
            for fn in filenames:
                full = Path(dirpath, fn)
                if full.is_symlink() or not full.is_file():
                    continue
                out.append((full.relative_to(self.root).as_posix(), full.stat().st_size))
        return sorted(out)

    def _open(self, path: str) -> IO[bytes]:
        pinned = self._pins.get(path)
        if pinned is not None:
            return io.BufferedReader(PinnedReader(pinned))
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root):
            raise SourceError(f"source {self.name}: {path!r} is outside {self.root}")
        try:
            return full.open("rb")
        except OSError as exc:
            raise SourceError(f"source {self.name}: cannot open {path}: {exc.strerror}") from exc

    def byte_size(self, dataset: Named) -> int | None:
        return (self.root / self._split(dataset)[0]).stat().st_size

    @contextmanager
    def pinned(self, dataset: Named) -> Iterator[PinnedObject]:
        """The file held open (reached without following links) while a backup reads it:
        every read goes through one ``PinnedFile`` (sources/pinned.py), and ``state`` is
        what the backup records: the path, size and SHA-256 of the very bytes it read."""
        path, _sheet, fmt = self._split(dataset)
        where = f"source {self.name}: {path}"
        opened = open_inside(self.root, path, where=f"source {self.name}")
        if opened is None:
            raise SourceError(f"{where} is gone")
        pin = PinnedFile(opened.fd, where, document=fmt is None)
        if self._pins.setdefault(path, pin) is not pin:  # one step: two threads cannot both
            opened.close()
            raise SourceError(f"{where} is already being backed up by this source")
        try:
            yield _PinnedFileState(self, dataset, pin)
        finally:
            if self._pins.get(path) is pin:
                del self._pins[path]
            opened.close()

    # ------------------------------------------------------------------ deletion

    def _open_for_deletion(self, dataset: Named) -> _Opened | None:
        ds = self.id_of(dataset)
        try:
            return open_inside(self.root, ds.object, where=str(ds))
        except SourceError as exc:
            raise DeletionRefused(f"{exc}; nothing was deleted") from exc

    def holds(self, dataset: Named, recorded: Mapping[str, Any]) -> bool | None:
        opened = self._open_for_deletion(dataset)
        if opened is None:
            return None
        try:
            return hash_fd(opened.fd) == (recorded["size"], recorded["sha256"])
        finally:
            opened.close()

    def delete_object(self, dataset: Named, backed_up: BackedUp) -> ObjectRemoval:
        ds, recorded = self.id_of(dataset), backed_up.state
        opened = self._open_for_deletion(ds)
        if opened is None:
            return ObjectRemoval(0, "unlink (already gone: an earlier attempt)")
        try:
            before = os.fstat(opened.fd)
            size, sha = hash_fd(opened.fd)
            if (size, sha) != (recorded["size"], recorded["sha256"]):
                raise DeletionRefused(
                    f"{ds}: the file is not the one backed up ({size} bytes, sha256 {sha[:12]}… "
                    f"now; {recorded['size']} bytes, {recorded['sha256'][:12]}… at the backup of "
                    f"{backed_up.at}): nothing was deleted. Re-run backup (a new "
                    "version), its gate and the transfer"
                )
            for sheet in recorded.get("sheets") or ():
                if sheet != ds.sheet and backed_up.sheet(sheet).get("sha256") != sha:
                    raise DeletionRefused(
                        f"{ds}: sheet {sheet!r} of the same workbook was backed up from another "
                        "version of the file: the workbook is not deleted until every sheet's "
                        "backup is of this very file"
                    )
            self._unlink_unchanged(ds, opened, before)
        finally:
            opened.close()
        what = (
            "unlink of the workbook (every sheet backed up)" if recorded.get("sheets") else "unlink"
        )
        return ObjectRemoval(1, f"{what}, after its sha256 equalled the backup's", UNLINK_NOTE)

    @staticmethod
    def _unlink_unchanged(ds: DatasetId, opened: _Opened, before: os.stat_result) -> None:
        after = os.fstat(opened.fd)
        now = os.stat(opened.leaf, dir_fd=opened.folder, follow_symlinks=False)
        same = (now.st_ino, now.st_dev) == (after.st_ino, after.st_dev)
        if not same or (before.st_size, before.st_mtime_ns) != (now.st_size, now.st_mtime_ns):
            raise DeletionRefused(f"{ds}: the file changed while it was checked; nothing deleted")
        os.unlink(opened.leaf, dir_fd=opened.folder)


class _PinnedFileState:
    """``FileSource.pinned``'s answer: the file's size when opened, and its state at the end."""

    def __init__(self, source: FileSource, dataset: Named, pin: PinnedFile) -> None:
        self._source, self._dataset, self._pin = source, dataset, pin
        self.size: int | None = pin.size

    def state(self, document: tuple[int, str] | None = None) -> dict[str, object]:
        """Path, size, SHA-256 (and a workbook's sheets) of the bytes read while pinned."""
        path = self._source._split(self._dataset)[0]
        sheets = self._source._sheets(path) if format_of(path) == "xlsx" else None
        size, sha = self._pin.state(document)
        printed = DatasetId(self._source.name, path).local  # a file name may hold any byte
        state: dict[str, object] = {"path": printed, "size": size, "sha256": sha}
        if sheets is not None:
            state["sheets"] = sheets
        return state
