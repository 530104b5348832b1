"""The first bytes of a text data file: its UTF-8 BOM, or why it is not UTF-8 text at all."""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import TuneforgeError


def sniff_text_file(path: Path, name: str | None) -> tuple[bytes, int]:
    """The first bytes (for format sniffing) and the BOM length; refuse binary and UTF-16/32 files."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    where = name or path.name
    if head.startswith(codecs.BOM_UTF8):
        return head, len(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
            or (len(head) >= 4 and (head[1:2] == b"\x00" and head[3:4] == b"\x00" or head[0:1] == b"\x00" and head[2:3] == b"\x00")):
        raise TuneforgeError(
            f"{where} is UTF-16/UTF-32 text; training reads UTF-8 only.",
            f"Convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
            code="dataset.wrong_encoding",
        )
    if b"\x00" in head:
        what = "binary data"
        if head.startswith(b"\x1f\x8b"):
            what = "gzip-compressed data"
        elif head.startswith(b"PK\x03\x04"):
            what = "a zip archive"
        elif head.startswith(b"PAR1"):
            what = "a Parquet file with the wrong extension"
        raise TuneforgeError(
            f"{where} holds {what}, not {path.suffix or 'text'} text.",
            "Rename a Parquet file to .parquet, decompress archives, or export the data as JSON Lines (one object per line).",
            code="dataset.binary",
        )
    return head, 0
