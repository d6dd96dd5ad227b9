"""A batch's keys as PostgreSQL array literals, read from its backed-up records in C.

The records of a batch, joined, are parsed by pyarrow's CSV reader (the key columns only),
and each key column becomes one array literal (``{"1","2",NULL}``) with Arrow's string
kernels: no Python call per row. The literal reads each value as ``keyed._array`` writes it:
quoted and escaped, NULL (an unquoted empty field) as NULL, ``""`` as the empty string.
Where pyarrow does not read the block as exactly one row per record, None: the caller reads
the keys record by record. A wrong key could only make the batch's comparison with its
backed-up lines fail (nothing of it is deleted), never delete a row it should not.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def key_literals(block: bytes, rows: int, width: int, index: list[int]) -> list[str] | None:
    """One array literal per key column (``index``: their positions among ``width``
    columns) of the ``rows`` records in ``block``; None where pyarrow reads them otherwise."""
    names = [f"c{i}" for i in range(width)]
    keys = [names[i] for i in index]
    read = list(dict.fromkeys(keys))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=read,
                column_types=dict.fromkeys(read, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != rows:
        return None
    literal = {name: _literal(table.column(name).combine_chunks()) for name in read}
    return [literal[name] for name in keys]


def _literal(values: pa.Array) -> str:
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    quoted = pc.fill_null(pc.binary_join_element_wise('"', escaped, '"', ""), "NULL")
    one = pa.ListArray.from_arrays(pa.array([0, len(quoted)], pa.int32()), quoted)
    return "{" + str(pc.binary_join(one, ",")[0].as_py() or "") + "}"
