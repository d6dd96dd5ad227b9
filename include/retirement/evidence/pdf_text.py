"""The text of a PDF, page by page, as a reader sees it: what the audit compares between the
dossier's dossier.pdf and the PDF its signed data renders to (evidence.rendering).

A small reader of the PDFs WeasyPrint writes (PDF 1.7, compressed object streams, Type0 fonts
with ToUnicode maps), with no PDF library: the objects (top-level and inside object streams),
the page tree from the catalogue, each page's content streams and fonts, and the text the
``Tj``/``TJ`` operators show, decoded through each font's ToUnicode map. A file it cannot read
raises PdfTextError (the audit reports it: a dossier's PDF it cannot read is not checked).
"""

from __future__ import annotations

import re
import zlib

from retirement.errors import IntegrityError

_OBJ = re.compile(rb"(\d+) (\d+) obj\s*")
_REF = rb"(\d+) \d+ R"
_TOKEN = re.compile(
    rb"<([0-9A-Fa-f\s]*)>|\((?:\\.|[^\\)])*\)|/[^\s/\[\]()<>]+|\[|\]|[^\s/\[\]()<>]+"
)


class PdfTextError(IntegrityError):
    """A PDF whose text cannot be read."""


def pdf_pages_text(data: bytes) -> list[str]:
    """The text shown on each page of the PDF ``data``, one line per text-showing run."""
    objects = _objects(data)
    root = _ref_in(_trailer(data), b"Root")
    pages = _ref_in(objects.get(root, (b"", None))[0], b"Pages")
    return [_page_text(objects, page) for page in _page_list(objects, pages, depth=0)]


def _objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Every object by number: (its dictionary or value, its decoded stream or None)."""
    found: dict[int, tuple[bytes, bytes | None]] = {}
    pos = 0
    while (m := _OBJ.search(data, pos)) is not None:
        start = m.end()
        end = data.find(b"endobj", start)
        if end == -1:
            raise PdfTextError("not a PDF this reads: an object without endobj")
        stream = data.find(b"stream", start, end)
        head, body = data[start:end], None
        if stream != -1:
            head = data[start:stream]
            length = re.search(rb"/Length\s+(\d+)(?!\s+\d+\s+R)", head)
            if length is None:
                raise PdfTextError("not a PDF this reads: a stream without a direct /Length")
            begin = stream + 6 + (2 if data[stream + 6 : stream + 8] == b"\r\n" else 1)
            body = _decoded(head, data[begin : begin + int(length[1])])
            end = data.find(b"endobj", begin + int(length[1]))
        found[int(m[1])] = (head, body)
        pos = end + 6
    for head, body in list(found.values()):
        if b"/ObjStm" in head and body is not None:
            found.update(_in_object_stream(head, body))
    return found


def _decoded(head: bytes, raw: bytes) -> bytes:
    if b"/FlateDecode" not in head:
        return raw
    try:
        return zlib.decompress(raw)
    except zlib.error as exc:
        raise PdfTextError(f"not a PDF this reads: a stream does not inflate ({exc})") from exc


def _in_object_stream(head: bytes, body: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    first = re.search(rb"/First\s+(\d+)", head)
    count = re.search(rb"/N\s+(\d+)", head)
    if first is None or count is None:
        raise PdfTextError("not a PDF this reads: an object stream without /First or /N")
    numbers = [int(x) for x in body[: int(first[1])].split()][: 2 * int(count[1])]
    offsets = [*numbers[1::2], len(body) - int(first[1])]
    base = int(first[1])
    return {
        numbers[2 * i]: (body[base + offsets[i] : base + offsets[i + 1]], None)
        for i in range(len(numbers) // 2)
    }


def _trailer(data: bytes) -> bytes:
    """The trailer dictionary (or the cross-reference stream's, which holds /Root)."""
    at = data.rfind(b"/Root")
    if at == -1:
        raise PdfTextError("not a PDF this reads: no /Root")
    return data[at : at + 40]


def _ref_in(text: bytes, key: bytes) -> int:
    m = re.search(rb"/" + key + rb"\s+" + _REF, text)
    if m is None:
        raise PdfTextError(f"not a PDF this reads: no /{key.decode()} reference")
    return int(m[1])


def _page_list(objects: dict[int, tuple[bytes, bytes | None]], node: int, depth: int) -> list[int]:
    """The page objects under a page-tree node, in order."""
    head = objects.get(node, (b"", None))[0]
    if depth > 32:
        raise PdfTextError("not a PDF this reads: the page tree is too deep")
    if re.search(rb"/Type\s*/Page\b(?!s)", head):
        return [node]
    kids = re.search(rb"/Kids\s*\[([^\]]*)\]", head)
    if kids is None:
        raise PdfTextError(f"not a PDF this reads: page-tree node {node} has no /Kids")
    out = []
    for kid in re.findall(_REF, kids[1]):
        out += _page_list(objects, int(kid), depth + 1)
    return out


def _page_text(objects: dict[int, tuple[bytes, bytes | None]], page: int) -> str:
    head = objects[page][0]
    fonts = _fonts(objects, head)
    contents = re.search(rb"/Contents\s*(\[[^\]]*\]|" + _REF + rb")", head)
    if contents is None:
        return ""
    lines: list[str] = []
    for ref in re.findall(_REF, contents[1]):
        body = objects.get(int(ref), (b"", None))[1]
        lines += _shown_text(body or b"", fonts)
    return "\n".join(lines)


def _resolved(objects: dict[int, tuple[bytes, bytes | None]], text: bytes, key: bytes) -> bytes:
    """The dictionary under ``key`` in ``text``, inline or by reference."""
    ref = re.search(rb"/" + key + rb"\s+" + _REF, text)
    if ref is not None:
        return objects.get(int(ref[1]), (b"", None))[0]
    at = text.find(b"/" + key)
    return text[at:] if at != -1 else b""


def _fonts(
    objects: dict[int, tuple[bytes, bytes | None]], page: bytes
) -> dict[bytes, dict[bytes, str]]:
    """Each font resource of a page by name: its ToUnicode map (code bytes -> text)."""
    resources = _resolved(objects, page, b"Resources")
    font_dict = _resolved(objects, resources, b"Font")
    fonts = {}
    for name, ref in re.findall(rb"/([^\s/<>\[\]()]+)\s+" + _REF, font_dict):
        font = objects.get(int(ref), (b"", None))[0]
        to_unicode = re.search(rb"/ToUnicode\s+" + _REF, font)
        cmap = objects.get(int(to_unicode[1]), (b"", None))[1] if to_unicode else None
        fonts[name] = _cmap(cmap or b"")
    return fonts


def _cmap(text: bytes) -> dict[bytes, str]:
    """A ToUnicode CMap's bfchar and bfrange entries."""
    out: dict[bytes, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
            out[bytes.fromhex(src.decode())] = _utf16(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            width, low, first = len(lo) // 2, int(lo, 16), int(dst, 16)
            for i in range(int(hi, 16) - low + 1):
                out[(low + i).to_bytes(width, "big")] = chr(first + i)
    return out


def _utf16(hexed: bytes) -> str:
    return bytes.fromhex(hexed.decode()).decode("utf-16-be", errors="replace")


def _shown_text(content: bytes, fonts: dict[bytes, dict[bytes, str]]) -> list[str]:
    """The text each Tj/TJ of a content stream shows, one entry per operator."""
    lines: list[str] = []
    pending: list[str] = []
    cmap: dict[bytes, str] = {}
    operands: list[bytes] = []
    for m in _TOKEN.finditer(content):
        token = m[0]
        if token == b"Tf" and len(operands) >= 2:
            cmap = fonts.get(operands[-2].lstrip(b"/"), {})
        elif token in (b"Tj", b"TJ", b"'", b'"'):
            lines.append("".join(pending))
        elif m[1] is not None:
            pending.append(_decode(bytes.fromhex(re.sub(rb"\s", b"", m[1]).decode()), cmap))
            continue
        if token not in (b"[", b"]"):
            operands = [*operands[-3:], token]
        if token in (b"Tj", b"TJ", b"'", b'"', b"ET"):
            pending = []
    return lines


def _decode(codes: bytes, cmap: dict[bytes, str]) -> str:
    width = len(next(iter(cmap))) if cmap else 1
    return "".join(cmap.get(codes[i : i + width], "\ufffd") for i in range(0, len(codes), width))
