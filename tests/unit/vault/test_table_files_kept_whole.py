"""A table file's backup holds every value the file has, or the backup is refused: the file
is deleted later on the strength of that backup (found by an adversarial review)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest

from retirement.crypto.keys import KeyStore, load_public_key
from retirement.errors import BackupError, SourceError
from retirement.formats.csv import csv_records
from retirement.sources.files import FileSource
from retirement.vault.verify import restore_to_file
from tests.support.backups import back_up_table

REFUSED = (BackupError, SourceError)  # read for its columns first (SourceError), or its rows


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    master = KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    return KeyStore(tmp_path / "keys", master)


def _restored_lines(keys: KeyStore, manifest_path: Path) -> list[bytes]:
    out = io.BytesIO()
    public = load_public_key(keys.public_signing_key_pem())
    restore_to_file(manifest_path, out, public, [keys.identity("demo", "erase")])
    return list(csv_records(io.BytesIO(out.getvalue())))


def test_a_workbook_whose_stored_dimension_is_stale_is_backed_up_whole(
    keys: KeyStore, tmp_path: Path
) -> None:
    """Several writers leave a sheet's <dimension> smaller than its cells; openpyxl's
    read-only mode trusted it and the backup held two rows of ten and two columns of three,
    then the workbook was unlinked."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "People"
    sheet.append(["id", "name", "email"])
    for i in range(1, 11):
        sheet.append([i, f"customer {i}", f"c{i}@example.com"])
    whole = tmp_path / "whole.xlsx"
    book.save(whole)
    folder = tmp_path / "files"
    folder.mkdir()
    with zipfile.ZipFile(whole) as zin, zipfile.ZipFile(folder / "book.xlsx", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, stale = re.subn(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:B2"', data)
                assert stale == 1
            zout.writestr(item, data)
    with FileSource("files", folder) as source:
        result = back_up_table(source, "book.xlsx#People", keys, tmp_path / "vault")
    assert result.manifest.fingerprint.rows == 10
    lines = _restored_lines(keys, result.manifest_path)
    assert lines[0] == b'"id","name","email"\n'
    assert b"c10@example.com" in lines[-1]


def _jsonl_backup(keys: KeyStore, tmp_path: Path, text: str) -> list[bytes]:
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    (folder / "d.jsonl").write_text(text, encoding="utf-8")
    with FileSource("files", folder) as source:
        result = back_up_table(source, "d.jsonl", keys, tmp_path / "vault")
    return _restored_lines(keys, result.manifest_path)


def test_a_json_number_with_more_digits_than_a_double_is_kept_digit_for_digit(
    keys: KeyStore, tmp_path: Path
) -> None:
    lines = _jsonl_backup(
        keys,
        tmp_path,
        '{"id": 1, "amount": 1234567890.123456789012, "rate": 0.1, "big": 1e400}\n'
        '{"id": 2, "amount": 2.5, "rate": -0.0, "big": 12345678901234567890123}\n',
    )
    assert lines[1] == b"1,1234567890.123456789012,0.1,1E+400\n"
    assert lines[2] == b"2,2.5,-0.0,12345678901234567890123\n"


def test_a_key_repeated_in_one_json_object_is_refused(keys: KeyStore, tmp_path: Path) -> None:
    """json.loads keeps the last of a repeated key's values: the first would be in no
    backup, and the file would be deleted."""
    with pytest.raises(REFUSED, match=r"line 2: the key 'email' appears twice"):
        _jsonl_backup(
            keys,
            tmp_path,
            '{"id": 1, "email": "a@x.example"}\n'
            '{"id": 2, "email": "old@x.example", "email": "new@x.example"}\n',
        )
    with pytest.raises(REFUSED, match=r"line 1: the key 'k' appears twice"):
        _jsonl_backup(keys, tmp_path, '{"id": 1, "more": {"k": 1, "k": 2}}\n')
    assert not [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]


def test_a_long_number_inside_a_nested_value_is_refused_not_rounded(
    keys: KeyStore, tmp_path: Path
) -> None:
    with pytest.raises(REFUSED, match="more digits than a double"):
        _jsonl_backup(keys, tmp_path, '{"id": 1, "more": {"x": 0.12345678901234567890}}\n')


def test_a_formula_the_workbook_saved_no_value_for_is_refused(
    keys: KeyStore, tmp_path: Path
) -> None:
    """openpyxl (and many exporters) write formulas without their values; reading the
    values gave an empty cell, the formula was in no backup, and the workbook was unlinked."""
    folder = tmp_path / "files"
    folder.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "S"
    sheet.append(["qty", "price", "total", "note"])
    sheet.append([3, 5, "=A2*B2", "=text typed as a string"])
    sheet["D2"].data_type = "s"  # a text cell that only starts with "=" is not a formula
    book.save(folder / "f.xlsx")
    with FileSource("files", folder) as source, pytest.raises(REFUSED, match=r"cell C2 .*A2\*B2"):
        back_up_table(source, "f.xlsx#S", keys, tmp_path / "vault")


def test_a_workbook_with_saved_formula_values_keeps_the_values(
    keys: KeyStore, tmp_path: Path
) -> None:
    """A spreadsheet program saves each formula's value beside it (written here into the
    sheet's XML as Excel does): the backup holds the value."""
    folder = tmp_path / "files"
    folder.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "S"
    sheet.append(["qty", "price", "total"])
    sheet.append([3, 5, "=A2*B2"])
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(folder / "f.xlsx", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, saved = re.subn(
                    rb"<f>A2\*B2</f>(<v\s*/>|<v></v>)?", b"<f>A2*B2</f><v>15</v>", data
                )
                assert saved == 1
            zout.writestr(item, data)
    with FileSource("files", folder) as source:
        result = back_up_table(source, "f.xlsx#S", keys, tmp_path / "vault")
    assert _restored_lines(keys, result.manifest_path)[1] == b"3,5,15\n"
