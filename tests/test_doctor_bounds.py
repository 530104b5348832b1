"""Bad input at scale stays bounded: each file below goes through `tuneforge validate FILE --json` in a
subprocess, whose peak RSS (os.wait4) stays under 1 GB, with no traceback, and an answer: a report (exit
0/1, or 2 naming the unreadable lines) or an error with a code and a fix (exit 2).

The limits are in tuneforge/doctor/read_limits.py. The fast cases sit just past each limit, so they take
the code path of the huge ones (a 2 GB line with no newline, a 1 GB Parquet value), which are marked slow
and generated sparse or compressed, so that they cost seconds to write.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tuneforge.doctor import validate
from tuneforge.doctor.read_limits import FIELD_LIMIT, LINE_LIMIT, MAX_DEPTH, PAGE_LIMIT
from tuneforge.errors import TuneforgeError

MB = 1024 * 1024
RSS_LIMIT_MB = 1024


@dataclass
class Run:
    rc: int
    out: dict[str, Any]
    stderr: str
    rss_mb: float
    seconds: float

    @property
    def messages(self) -> list[str]:
        return [e["message"] for e in self.out.get("errors", [])]


# Linux counts the memory of the process a child was forked from in the child's peak RSS (it survives
# exec), so the CLI is started by a small launcher: its peak is the CLI's own, plus the launcher's ~10 MB.
LAUNCHER = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def validate_cli(path: Path, *args: str, seconds: float = 60) -> Run:
    """Run the CLI on PATH in a fresh process; its exit status, JSON, stderr, peak RSS and wall time."""
    out, err, rss = (path.parent / f"{path.name}.{ext}" for ext in ("out", "err", "rss"))
    started = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss), sys.executable, "-m", "tuneforge",
                               "validate", str(path), "--json", *args],
                              stdout=o, stderr=e, env=dict(os.environ, HF_HUB_OFFLINE="1"), check=False)
    elapsed = time.monotonic() - started
    run = Run(proc.returncode, json.loads(out.read_text() or "{}"), err.read_text(),
              int(rss.read_text()) / 1024, elapsed)
    print(f"{path.name}: exit {run.rc}, peak RSS {run.rss_mb:.0f} MB, {elapsed:.2f} s")
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.rss_mb < RSS_LIMIT_MB, f"peak RSS {run.rss_mb:.0f} MB"
    assert elapsed < seconds, f"{elapsed:.1f} s"
    assert run.rc in (0, 1, 2)
    if "code" in run.out:  # an error: a code, a fix, exit 2
        assert run.rc == 2 and run.out["fix"], run.out
    else:
        assert "rows" in run.out and "methods" in run.out, run.out
    return run


def one_long_line(path: Path, size: int, head: bytes, *, real: int | None = None, tail: bytes = b"") -> Path:
    """HEAD, then 'a' up to REAL bytes (the rest a sparse hole of NUL bytes) up to SIZE, with no newline."""
    real = size if real is None else real
    chunk = b"a" * (8 * MB)
    with open(path, "wb") as fh:
        fh.write(head)
        left = real - len(head)
        while left > 0:
            fh.write(chunk[:left])
            left -= len(chunk)
        fh.truncate(size)
        fh.seek(size)
        fh.write(tail)
    return path


# ---- JSON Lines: a line longer than the limit ---------------------------------------------------------

@pytest.mark.parametrize("head", [b'{"text": "', b'"', b"  plain words "])
def test_a_json_lines_line_past_the_limit_is_refused_with_its_line_and_the_next_lines_are_read(
        tmp_path: Path, head: bytes) -> None:
    path = one_long_line(tmp_path / "long.jsonl", LINE_LIMIT + 18 * MB, head,
                         tail=b'\n{"text": "a good row after it"}\n')
    run = validate_cli(path)
    assert run.rc == 2 and run.out["errors"][0]["line"] == 1
    assert any("longer than 32" in m for m in run.messages), run.messages
    if not head.startswith(b"{"):  # the rest of the file is read past the long line
        assert run.out["rows"] == 1


def test_a_50mb_line_with_no_newline_is_refused_bounded(tmp_path: Path) -> None:
    run = validate_cli(one_long_line(tmp_path / "noline.jsonl", 50 * MB, b'{"text": "'))
    assert run.rc == 2 and run.out["rows"] == 0 and run.out["error_count"] == 1
    assert "longer than 32 million characters" in run.messages[0]


def test_objects_one_after_another_on_one_long_line_are_read_one_at_a_time(tmp_path: Path) -> None:
    record = b'{"text": "one record after another, no newline: ' + b"x" * 4000 + b'"}'
    count = (LINE_LIMIT + 4 * MB) // len(record)
    (tmp_path / "glued.jsonl").write_bytes(record * count)
    run = validate_cli(tmp_path / "glued.jsonl")
    assert run.out["rows"] == count and run.out["error_count"] == 0


def test_a_json_array_with_a_value_past_the_limit_and_a_file_of_blanks(tmp_path: Path) -> None:
    run = validate_cli(one_long_line(tmp_path / "array.json", LINE_LIMIT + 8 * MB, b'[{"text": "'))
    assert run.rc == 2 and "longer than 32 million characters" in run.messages[0]
    blanks = tmp_path / "blanks.json"
    with open(blanks, "wb") as fh:
        fh.write(b"[" + b" \n" * (20 * MB) + b'{"text": "x"}]')
    run = validate_cli(blanks)
    assert run.out["rows"] == 1 and run.out["error_count"] == 0


# ---- nesting ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text", [
    ("deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
    ("deep_objects.jsonl", '{"a": ' * 100_000 + "1" + "}" * 100_000 + "\n"),
    ("deep.json", '[{"text": ' + "[" * 100_000 + "]" * 100_000 + "}]"),
    ("deep_pretty.json", '{\n"text": ' + "[" * 100_000 + "]" * 100_000 + "\n}\n"),
])
def test_json_nested_100000_deep_is_refused_not_recursed(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    run = validate_cli(tmp_path / name)
    assert run.rc == 2 and run.out["rows"] == 0
    assert f"more than {MAX_DEPTH} levels" in run.messages[0]


def test_a_row_nested_past_the_limit_is_one_bad_line_among_good_ones(tmp_path: Path) -> None:
    depth = MAX_DEPTH + 50  # parses (below Python's recursion limit), but is refused all the same
    deep = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                       "meta": json.loads("[" * depth + "]" * depth)})
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}],
                       "meta": json.loads("[" * 20 + '"[[[[ brackets in a string do not count"' + "]" * 20)})
    (tmp_path / "mixed.jsonl").write_text("\n".join([good, deep, good, "[" * (MAX_DEPTH + 1)]) + "\n")
    run = validate_cli(tmp_path / "mixed.jsonl")
    assert run.out["rows"] == 2 and [e["line"] for e in run.out["errors"]] == [2, 4]


# ---- CSV ----------------------------------------------------------------------------------------------

def test_a_csv_with_a_10mb_field_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text('prompt,completion\n"' + "x" * (10 * MB) + '",short\n"q2","a2"\n')
    run = validate_cli(path)
    assert run.out["rows"] == 2 and run.out["error_count"] == 0


def test_a_csv_field_past_the_limit_or_a_line_past_it_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "unclosed.csv"
    with open(path, "w") as fh:  # a quote that never closes, over many short lines
        fh.write('text\n"ok"\n"never closed\n' + "more text on this line\n" * (FIELD_LIMIT // 20))
    run = validate_cli(path)
    assert run.rc == 2 and run.out["rows"] == 1 and run.out["errors"][0]["line"] == 3
    assert "field longer than 16 MB" in run.messages[0]
    run = validate_cli(one_long_line(tmp_path / "noline.csv", LINE_LIMIT + 8 * MB, b"text\n"))
    assert run.rc == 2 and run.out["errors"][0]["line"] == 2 and "longer than 32 MB" in run.messages[0]


# ---- Parquet ------------------------------------------------------------------------------------------

def parquet_with_a_big_cell(path: Path, size: int) -> Path:
    """Three rows of 'text': 'hello', SIZE bytes of 'a', 'world' (built without Python strings, zstd)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = pa.allocate_buffer(size + 10)
    view = np.frombuffer(data, dtype=np.uint8)
    view[:] = ord("a")
    view[:5] = np.frombuffer(b"hello", dtype=np.uint8)
    view[-5:] = np.frombuffer(b"world", dtype=np.uint8)
    offsets = pa.py_buffer(np.array([0, 5, 5 + size, size + 10], dtype=np.int64).tobytes())
    column = pa.LargeStringArray.from_buffers(3, offsets, data)
    pq.write_table(pa.table({"text": column}), path, compression="zstd", use_dictionary=False, write_statistics=False)
    return path


def test_a_parquet_value_past_the_page_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    run = validate_cli(parquet_with_a_big_cell(tmp_path / "page.parquet", PAGE_LIMIT + 16 * MB))
    assert run.rc == 2 and run.out["rows"] == 0 and "rows 1-3" in run.messages[0] and "'text'" in run.messages[0]
    assert run.rss_mb < 300  # the page was never decompressed


def test_a_parquet_row_past_the_cell_limit_is_one_bad_row(tmp_path: Path) -> None:
    run = validate_cli(parquet_with_a_big_cell(tmp_path / "cell.parquet", 40 * MB))
    assert run.rc == 2 and run.out["rows"] == 2 and [e["line"] for e in run.out["errors"]] == [2]
    assert "over the 32 MB a row may hold" in run.messages[0]


# ---- other files behind a data file's extension ---------------------------------------------------------

def test_archives_and_binary_formats_behind_a_data_extension_are_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(1000))
    with zipfile.ZipFile(tmp_path / "zipped.jsonl", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.jsonl", rows)
    with zipfile.ZipFile(tmp_path / "sheet.csv", "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "packed.json").write_bytes(gzip.compress(rows.encode()))
    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "table.jsonl")
    with zipfile.ZipFile(tmp_path / "zipped.parquet", "w") as z:
        z.writestr("x.parquet", b"PAR1")
    (tmp_path / "rows.parquet").write_text(rows)
    expected = {"zipped.jsonl": ("zip", "unzip zipped.jsonl"), "sheet.csv": ("xlsx", "CSV"),
                "packed.json": ("gzip", "gunzip"), "table.jsonl": ("parquet", ".parquet"),
                "zipped.parquet": ("zip", "unzip"), "rows.parquet": (None, ".jsonl")}
    run = validate_cli(tmp_path / "zipped.jsonl")  # the CLI: exit 2 with the error as JSON
    assert run.out["code"] == "dataset.binary" and run.out["details"] == {"detected": "zip"}
    for name, (detected, fix) in expected.items():  # the rest in process: nothing is read past the first bytes
        with pytest.raises(TuneforgeError) as info:
            validate(str(tmp_path / name), cache=False)
        assert info.value.code in ("dataset.binary", "dataset.parse_error"), name
        assert fix in (info.value.fix or ""), (name, info.value.fix)
        assert info.value.details.get("detected") == detected, (name, info.value.details)


# ---- the huge ones (slow): the same code paths as above, at the sizes in the issue --------------------------

@pytest.mark.slow
@pytest.mark.parametrize("head", [b'{"text": "', b'"'])
def test_a_2gb_json_lines_file_with_no_newline(tmp_path: Path, head: bytes) -> None:
    path = one_long_line(tmp_path / "huge.jsonl", 2048 * MB, head, real=LINE_LIMIT + 8 * MB)
    try:
        run = validate_cli(path, seconds=120)
        assert run.rc == 2 and run.out["rows"] == 0 and "longer than 32" in run.messages[0]
    finally:
        path.unlink()


@pytest.mark.slow
def test_a_parquet_file_with_a_1gb_string_cell(tmp_path: Path) -> None:
    path = parquet_with_a_big_cell(tmp_path / "huge.parquet", 1024 * MB)
    try:
        run = validate_cli(path)
        assert run.rc == 2 and run.out["rows"] == 0 and "page of 1024 MB" in run.messages[0]
    finally:
        path.unlink()


def test_the_personal_data_scan_takes_time_in_proportion_to_the_text() -> None:
    from tuneforge.doctor.pii import find_pii

    for text in ("a." * 100_000 + "@", "a@" * 100_000, "1-" * 100_000, ("a" * 60 + ".") * 10_000 + "@b"):
        started = time.monotonic()
        assert find_pii(text) == (False, False, False)
        assert time.monotonic() - started < 2, text[:20]  # the old email search took minutes on the first
    assert find_pii("x " * 100_000 + "mail jane.doe@example.org")[0]
