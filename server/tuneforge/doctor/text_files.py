"""The first bytes of a text data file: its UTF-8 BOM, or why it is not UTF-8 text at all.

Archives, compressed files and other binary formats are known by their signature (magic bytes) before
anything is parsed, whatever the file's extension, and the fix says what the file really is.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import TuneforgeError

# signature -> (what the file is, its short name, what to do: {name} is the file's name)
_DECOMPRESS = "Decompress it first ({tool}), then validate the .jsonl/.json/.csv inside."
SIGNATURES: tuple[tuple[bytes, str, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data", "gzip", _DECOMPRESS.replace("{tool}", "`gunzip -c {name} > data.jsonl`")),
    (b"PK\x03\x04", "a zip archive", "zip", "Unzip it (`unzip {name}`), then validate the data file inside."),
    (b"PK\x05\x06", "an empty zip archive", "zip", "Unzip it (`unzip {name}`), then validate the data file inside."),
    (b"PK\x07\x08", "a zip archive", "zip", "Unzip it (`unzip {name}`), then validate the data file inside."),
    (b"BZh", "bzip2-compressed data", "bzip2", _DECOMPRESS.replace("{tool}", "`bunzip2 -c {name} > data.jsonl`")),
    (b"\xfd7zXZ\x00", "xz-compressed data", "xz", _DECOMPRESS.replace("{tool}", "`xz -dc {name} > data.jsonl`")),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "zstd", _DECOMPRESS.replace("{tool}", "`zstd -dc {name} > data.jsonl`")),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z", "Extract it (`7z x {name}`), then validate the data file inside."),
    (b"PAR1", "a Parquet file", "parquet", "Rename it to end in .parquet (the doctor reads Parquet by its extension)."),
    (b"ARROW1", "an Arrow IPC file", "arrow", "Write the rows as Parquet or JSON Lines (datasets: `ds.to_parquet(...)`)."),
    (b"SQLite format 3\x00", "an SQLite database", "sqlite", "Export the table as CSV or JSON Lines (e.g. `sqlite3 -json`)."),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a Microsoft Office file (.xls/.doc)", "ole", "Save the sheet as CSV (File > Save As > CSV)."),
    (b"%PDF-", "a PDF document", "pdf", "Extract the text into JSON Lines rows (one object per line)."),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "png", "Point at the data file, not an image."),
    (b"\xff\xd8\xff", "a JPEG image", "jpeg", "Point at the data file, not an image."),
    (b"\x93NUMPY", "a NumPy array file", "npy", "Write the rows as JSON Lines or Parquet."),
    (b"\x80\x04\x95", "a Python pickle", "pickle", "Write the rows as JSON Lines or Parquet (pickles are not read: they can run code)."),
    (b"\x80\x05\x95", "a Python pickle", "pickle", "Write the rows as JSON Lines or Parquet (pickles are not read: they can run code)."),
)


def binary_kind(head: bytes) -> tuple[str, str, str] | None:
    """(what, short name, fix template) when HEAD starts with a known binary signature."""
    for magic, what, short, fix in SIGNATURES:
        if head.startswith(magic):
            if short == "bzip2" and head[4:10] != b"1AY&SY":  # the block header follows "BZh1".."BZh9"
                continue
            if short == "zip" and (b"[Content_Types].xml" in head[:200] or b"xl/" in head[:200]):
                return "an Excel workbook (.xlsx, a zip archive)", "xlsx", "Save the sheet as CSV (File > Save As > CSV)."
            return what, short, fix
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive", "tar", "Extract it (`tar -xf {name}`), then validate the data file inside."
    return None


def sniff_text_file(path: Path, name: str | None) -> tuple[bytes, int]:
    """The first bytes (for format sniffing) and the BOM length; refuse binary and UTF-16/32 files."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    where = name or path.name
    known = binary_kind(head)
    if known is not None:
        what, short, fix = known
        raise TuneforgeError(
            f"{where} is {what}, not {path.suffix or 'text'} text.",
            fix.replace("{name}", path.name),
            code="dataset.binary",
            details={"detected": short},
        )
    if head.startswith(codecs.BOM_UTF8):
        return head, len(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
            or (len(head) >= 4 and (head[1:2] == b"\x00" and head[3:4] == b"\x00" or head[0:1] == b"\x00" and head[2:3] == b"\x00")):
        raise TuneforgeError(
            f"{where} is UTF-16/UTF-32 text; training reads UTF-8 only.",
            f"Convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
            code="dataset.wrong_encoding",
        )
    if b"\x00" in head:
        raise TuneforgeError(
            f"{where} holds binary data, not {path.suffix or 'text'} text.",
            "Point at a .jsonl/.json/.csv text file (or a .parquet file), or export the data as JSON Lines "
            "(one object per line).",
            code="dataset.binary",
            details={"detected": "binary"},
        )
    return head, 0
