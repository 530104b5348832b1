"""The images of a vision-language dataset: found in each row, decoded with Pillow, matched to their placeholders.

Two layouts are recognised, the ones TRL's vision-language trainers read:
- llava-instruct-mix style: `images` (a list) beside `messages` whose content has image parts
  ({"type": "image"}) or `<image>` placeholders in its text;
- RLAIF-V style: `image` (one) beside prompt/question and chosen/rejected.
An image is a path (relative to the data file's folder, or absolute), raw bytes, a {"bytes", "path"} dict
(what a Parquet image feature holds; bytes may be base64 text in JSON), or an http(s) URL (not fetched).

Every image is opened and decoded (`Image.load()`: a truncated file fails here, not at step 900), its size
and mode kept; a missing or corrupt one is a blocking problem with its row's line. Images referenced twice
are decoded once. Placeholders and images are matched per row: TRL puts the images before the first user
turn only when no turn marks them; otherwise the counts must agree or the processor refuses the batch.
Image tokens per the model's processor are counted by image_tokens.py from the sizes kept here.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections import Counter
from pathlib import Path
from typing import Any

from ..reports.dataset import ImageStats
from .tally import Tally

IMAGE_COLUMNS = ("images", "image")
PLACEHOLDER = "<image>"
MIN_SIDE = 28  # below this many pixels a side, Qwen-VL's processor refuses the image (patch 14 x merge 2)
MAX_DECODED = 4096  # distinct decoded images remembered (a path or bytes seen again is not decoded again)
MAX_SIZES = 4096  # distinct (width, height) kept for counting image tokens

FIXES = {
    "image_missing": "Put the image files where the paths point (paths are relative to the data file's folder), "
                     "or drop these rows.",
    "image_corrupt": "Re-export or drop these images: Pillow cannot decode them, so training would stop at that row.",
    "image_value": "Give each image as a path, bytes, or a {\"bytes\", \"path\"} object (a Parquet image feature).",
    "image_mismatch": "Make the image placeholders ({\"type\": \"image\"} parts or <image>) in each row's turns as many "
                      "as its images, or remove all placeholders (TRL then puts the images before the first user turn).",
    "image_small": "Resize these images up (at least 28 x 28 pixels): smaller ones are refused by Qwen-VL processors.",
    "image_remote": "Download the images and reference local files: training does not fetch URLs.",
}


def image_column(row: dict[str, Any]) -> str | None:
    """The row's image column (images, or image), if it has one."""
    for name in IMAGE_COLUMNS:
        if name in row:
            return name
    return None


def row_images(value: Any) -> list[Any]:
    """The image references of one row's image column (a list, or one image)."""
    if value is None:
        return []
    return list(value) if type(value) is list else [value]


def placeholders(row: dict[str, Any]) -> int:
    """Image placeholders in the row's turns: {"type": "image"} parts and `<image>` marks in text."""
    count = 0
    for key in ("messages", "prompt", "chosen", "rejected", "question", "conversations"):
        value = row.get(key)
        if type(value) is str:
            count += value.count(PLACEHOLDER) if key in ("prompt", "question") else 0
        elif type(value) is list:
            for message in value:
                if type(message) is not dict:
                    continue
                content = message.get("content", message.get("value"))
                if type(content) is str:
                    count += content.count(PLACEHOLDER)
                elif type(content) is list:
                    for part in content:
                        if type(part) is dict and (part.get("type") == "image" or "image" in part and part.get("type") is None):
                            count += 1
                        elif type(part) is dict and type(part.get("text")) is str:
                            count += part["text"].count(PLACEHOLDER)
    return count


class ImageCheck:
    """What one image reference is: (kind, detail, (width, height, mode, format) or None)."""

    def __init__(self, base_dirs: list[Path | None]):
        self.base_dirs = base_dirs  # per file index: the folder relative paths start from (None: a Hub dataset)
        self._seen: dict[Any, tuple[str, str, tuple[int, int, str, str] | None]] = {}

    def check(self, ref: Any, file_index: int) -> tuple[str, str, tuple[int, int, str, str] | None]:
        t = type(ref)
        if t is dict:
            data, path = ref.get("bytes"), ref.get("path")
            if data is not None:
                return self._bytes(data)
            if path is not None:
                return self.check(path, file_index)
            return "image_value", "an image object with neither bytes nor path", None
        if t is bytes or t is bytearray:
            return self._bytes(bytes(ref))
        if t is str:
            if ref.startswith(("http://", "https://")):
                return "image_remote", ref[:80], None
            if ref.startswith("data:image/") and "," in ref:
                return self._bytes(ref.split(",", 1)[1])
            return self._path(ref, file_index)
        return "image_value", f"an image given as {t.__name__}", None

    def _path(self, ref: str, file_index: int) -> tuple[str, str, tuple[int, int, str, str] | None]:
        base = self.base_dirs[file_index] if file_index < len(self.base_dirs) else None
        path = Path(ref).expanduser()
        if not path.is_absolute():
            if base is None:
                return "image_missing", f"{ref[:80]} (a relative path in a Hub dataset)", None
            path = base / path
        key = ("path", str(path))
        if key in self._seen:
            return self._seen[key]
        if not path.is_file():
            found = ("image_missing", f"{ref[:80]} does not exist", None)
        else:
            found = _decode(path)
        self._remember(key, found)
        return found

    def _bytes(self, data: Any) -> tuple[str, str, tuple[int, int, str, str] | None]:
        if type(data) is str:  # base64 text (bytes written to JSON)
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return "image_corrupt", "image bytes that are not base64", None
        key = ("bytes", hash(data), len(data))
        if key in self._seen:
            return self._seen[key]
        found = _decode(io.BytesIO(data))
        self._remember(key, found)
        return found

    def _remember(self, key: Any, found: Any) -> None:
        if len(self._seen) < MAX_DECODED:
            self._seen[key] = found


def _decode(fp: Any) -> tuple[str, str, tuple[int, int, str, str] | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fp) as img:
            size, mode, fmt = img.size, img.mode, img.format or "?"
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        name = fp.name if isinstance(fp, Path) else "image bytes"
        return "image_corrupt", f"{name} does not decode ({type(exc).__name__}: {str(exc)[:80]})", None
    return "ok", "", (size[0], size[1], mode, fmt)


class ImageScan:
    """Accumulates, over one pass, every row's images: bounded summaries and tallies with sample lines."""

    def __init__(self, base_dirs: list[Path | None]):
        self.checker = ImageCheck(base_dirs)
        self.column: str | None = None
        self.rows_with_images = 0
        self.images = self.decoded = self.missing = self.corrupt = self.remote = self.max_per_row = 0
        self.placeholder_rows = 0
        self.modes: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()
        self.sizes: Counter[tuple[int, int]] = Counter()  # (width, height) -> images, for token counts
        self.row_sizes: Counter[tuple[tuple[int, int], ...]] = Counter()  # the sizes of one row's images -> rows
        self.min_w = self.min_h = self.max_w = self.max_h = 0
        self.tallies: dict[str, Tally] = {}
        self.examples: dict[str, str] = {}  # tally key -> the first image's detail (which file, what error)

    @property
    def found(self) -> bool:
        return self.column is not None

    def _tally(self, kind: str, message: str, where: tuple[int, int], blocking: bool, detail: str = "") -> None:
        tally = self.tallies.get(kind + message)
        if tally is None:
            tally = self.tallies[kind + message] = Tally(kind, message, FIXES.get(kind), blocking, self.column)
            if detail:
                self.examples[kind + message] = detail
        tally.add(where[1], where[0])

    def add_row(self, row: dict[str, Any], where: tuple[int, int]) -> None:
        column = image_column(row)
        if column is None and self.column is None:
            return  # a text dataset: nothing to check (and cheap)
        marks = placeholders(row)
        if column is None:
            if marks and self.column is not None:
                self._tally("image_mismatch", "row(s) with image placeholders but no images", where, True)
            return
        self.column = self.column or column
        refs = row_images(row[column])
        if refs:
            self.rows_with_images += 1
        self.max_per_row = max(self.max_per_row, len(refs))
        if marks:
            self.placeholder_rows += 1
            if marks != len(refs):
                self._tally("image_mismatch", "row(s) whose image placeholders and images differ in number", where,
                            True, f"{marks} placeholder(s), {len(refs)} image(s)")
        sizes: list[tuple[int, int]] = []
        for ref in refs:
            self.images += 1
            kind, detail, info = self.checker.check(ref, where[0])
            if info is None:
                if kind == "image_missing":
                    self.missing += 1
                elif kind == "image_corrupt":
                    self.corrupt += 1
                elif kind == "image_remote":
                    self.remote += 1
                blocking = kind != "image_remote"
                what = {"image_missing": "image file(s) missing", "image_corrupt": "image(s) that do not decode",
                        "image_remote": "image URL(s), not fetched or checked",
                        "image_value": detail}.get(kind, detail)
                self._tally(kind, what, where, blocking, detail if kind != "image_value" else "")
                continue
            width, height, mode, fmt = info
            self.decoded += 1
            self.modes[mode] += 1
            self.formats[fmt] += 1
            if len(self.sizes) < MAX_SIZES or (width, height) in self.sizes:
                self.sizes[(width, height)] += 1
            sizes.append((width, height))
            if self.decoded == 1:
                self.min_w, self.min_h, self.max_w, self.max_h = width, height, width, height
            else:
                self.min_w, self.min_h = min(self.min_w, width), min(self.min_h, height)
                self.max_w, self.max_h = max(self.max_w, width), max(self.max_h, height)
            if min(width, height) < MIN_SIDE:
                self._tally("image_small", f"image(s) under {MIN_SIDE} pixels a side", where, False,
                            f"{width}x{height}")
        if sizes and len(self.row_sizes) < MAX_SIZES:
            self.row_sizes[tuple(sorted(sizes))] += 1

    def stats(self) -> ImageStats | None:
        if self.column is None:
            return None
        notes: list[str] = []
        odd_modes = sorted(m for m in self.modes if m not in ("RGB", "RGBA", "L", "P"))
        if odd_modes:
            notes.append(f"Images in mode {', '.join(odd_modes)}: the templates convert every image to RGB.")
        return ImageStats(
            column=self.column, rows_with_images=self.rows_with_images, images=self.images, decoded=self.decoded,
            missing=self.missing, corrupt=self.corrupt, remote=self.remote, max_per_row=self.max_per_row,
            min_width=self.min_w if self.decoded else None, min_height=self.min_h if self.decoded else None,
            max_width=self.max_w if self.decoded else None, max_height=self.max_h if self.decoded else None,
            modes=dict(self.modes), formats=dict(self.formats), placeholder_rows=self.placeholder_rows,
            mismatched_rows=sum(t.count for t in self.tallies.values() if t.kind == "image_mismatch"), notes=notes,
        )


def base_dirs(files: list[Path], root: Path | None, hub: bool) -> list[Path | None]:
    """Per file index, the folder an image path in that file is relative to (None for a Hub dataset)."""
    if hub:
        return [None]
    if root is None:
        return [files[0].parent.resolve() if files else None]
    return [p.parent.resolve() for p in files]


def referenced_image_files(source_path: Path) -> list[Path]:
    """The local image files a dataset's rows name by path (what a cloud job must carry beside the data):
    existing files only, each once, in the order first named. Hub datasets and images as bytes name none."""
    from .row_records import Record
    from .sources import open_source

    src = open_source(str(source_path))
    if src.kind == "hub":
        return []
    bases = base_dirs(src.files, src.root, False)
    index = {name: i for i, name in enumerate(src.file_names())}
    found: dict[Path, None] = {}
    for item in src.records():
        if not isinstance(item, Record):
            continue
        column = image_column(item.value)
        if column is None:
            continue
        base = bases[index.get(item.file, 0)] if bases else None
        for ref in row_images(item.value[column]):
            path = ref.get("path") if type(ref) is dict and ref.get("bytes") is None else ref
            if type(path) is not str or path.startswith(("http://", "https://", "data:")):
                continue
            p = Path(path).expanduser()
            p = p if p.is_absolute() or base is None else base / p
            if p.is_file():
                found.setdefault(p.resolve(), None)
    return list(found)
