"""The interface every source implements."""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from retirement.model.ids import DatasetId

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

BATCH_ROWS = 10_000

Row = tuple[Any, ...]
"""One row as a source yields it: values in column order."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class DatasetRef:
    """One dataset of a source: a table, a tabular file, or an opaque document."""

    id: DatasetId
    kind: Literal["table", "document"] = "table"
    size: int | None = None  # bytes, where the source knows them

    @property
    def source(self) -> str:
        return self.id.source

    @property
    def name(self) -> str:
        """The dataset's printed name within its source (``DatasetId.local``)."""
        return self.id.local

    @property
    def qualified(self) -> str:
        return str(self.id)


Named = DatasetId | str  # a dataset, or its printed name within the source


class Source(ABC):
    """A store of customer data. Subclasses stream; none holds a whole dataset in memory."""

    def __init__(
        self, name: str, *, include: Sequence[str] = ("*",), exclude: Sequence[str] = ()
    ) -> None:
        self.name = name
        self._include = tuple(include)
        self._exclude = tuple(exclude)

    def id_of(self, dataset: Named) -> DatasetId:
        """The dataset ``dataset`` names in this source (parsed once, here)."""
        if isinstance(dataset, DatasetId):
            return dataset
        return DatasetId.of(self.name, dataset)

    def wanted(self, dataset: str) -> bool:
        """The plan's include/exclude globs applied to a table's name or a file's path (the
        name itself, whatever characters it holds)."""
        hit = any(fnmatch.fnmatchcase(dataset, p) for p in self._include)
        return hit and not any(fnmatch.fnmatchcase(dataset, p) for p in self._exclude)

    @abstractmethod
    def datasets(self) -> list[DatasetRef]:
        """Every dataset the plan's globs select, sorted by name."""

    @abstractmethod
    def schema(self, dataset: Named) -> list[Column]:
        """The columns of a tabular dataset (empty for a document)."""

    @abstractmethod
    def count(self, dataset: Named) -> int:
        """The exact number of rows (1 for a document)."""

    @abstractmethod
    def batches(self, dataset: Named, *, batch_rows: int = BATCH_ROWS) -> Iterator[list[Row]]:
        """All rows, in batches of at most ``batch_rows``, in a stable order where possible."""

    def sample(self, dataset: Named, n: int) -> list[Row]:
        """Up to ``n`` rows (the first ones: cheap and deterministic)."""
        out: list[Row] = []
        for batch in self.batches(dataset, batch_rows=min(n, BATCH_ROWS)):
            out.extend(batch[: n - len(out)])
            if len(out) >= n:
                break
        return out

    def byte_size(self, dataset: Named) -> int | None:  # overridden where known
        """Bytes the dataset occupies at the source, where the source can tell."""
        return None

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
