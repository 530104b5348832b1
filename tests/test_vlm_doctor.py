"""The dataset doctor on vision-language data: image columns found, every image decoded with Pillow, missing
and corrupt images reported with their row's line, placeholders matched to images, image tokens counted with
the model's processor."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from tuneforge.doctor import validate
from vlm_fixtures import build_tiny_vlm, write_llava_rows, write_rlaif_rows


@pytest.fixture(scope="session")
def tiny_vlm_dir(smollm2_dir: Path) -> Path:
    from conftest import test_cache_dir

    return build_tiny_vlm(test_cache_dir() / "tiny-idefics3-h256-v2", smollm2_dir)


def _png(size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def _turns(user, answer="It is red."):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _by_kind(report):
    return {p.kind: p for p in report.problems}


def test_llava_rows_with_broken_images_are_reported_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "ok.png").write_bytes(_png())
    (tmp_path / "pics" / "cut.png").write_bytes(_png()[:60])  # truncated: opens, does not decode
    (tmp_path / "pics" / "tiny.png").write_bytes(_png((10, 10), "L"))
    rows = [
        {"images": ["pics/ok.png"], "messages": _turns([{"type": "image"}, {"type": "text", "text": "Colour?"}])},
        {"images": ["pics/nope.png"], "messages": _turns("<image>Colour?")},
        {"images": ["pics/cut.png"], "messages": _turns("Colour?")},
        {"images": ["pics/ok.png"], "messages": _turns("<image> and <image>: which is red?")},
        {"images": ["pics/tiny.png"], "messages": _turns("Colour?")},
        {"images": [{"bytes": base64.b64encode(_png((50, 20), "RGBA")).decode(), "path": None}],
         "messages": _turns("Colour?")},
    ]
    report = validate(str(_write(tmp_path / "data.jsonl", rows)), cache=False)
    im = report.images
    assert im is not None and im.column == "images"
    assert (im.images, im.decoded, im.missing, im.corrupt) == (6, 4, 1, 1)
    assert (im.min_width, im.min_height, im.max_width, im.max_height) == (10, 10, 50, 30)
    assert im.modes == {"RGB": 2, "L": 1, "RGBA": 1} and im.placeholder_rows == 3 and im.mismatched_rows == 1
    found = _by_kind(report)
    assert found["image_missing"].line == 2 and found["image_missing"].blocking and "nope.png" in found["image_missing"].message
    assert found["image_corrupt"].line == 3 and found["image_corrupt"].blocking
    assert found["image_mismatch"].line == 4 and "2 placeholder(s), 1 image(s)" in found["image_mismatch"].message
    assert found["image_small"].line == 5 and not found["image_small"].blocking
    assert report.methods["sft"].status == "incompatible" and not report.ready
    assert "image problem" in report.methods["sft"].reasons[0]


def test_rlaif_style_pairs_and_a_parquet_image_feature_are_checked(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_rlaif_rows(tmp_path / "rlaif")
    report = validate(str(data), cache=False)
    assert report.images.column == "image" and report.images.decoded == 16 and report.images.missing == 0
    assert report.methods["dpo"].status in ("ready", "needs_mapping")
    assert report.methods["dpo"].status != "incompatible"
    # an image feature as datasets writes it to Parquet: a struct of bytes and path; one row's bytes broken
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "image": pa.array([{"bytes": _png(), "path": "a.png"}, {"bytes": b"\x89PNG not really", "path": "b.png"},
                           {"bytes": _png((64, 64)), "path": None}], type=image_type),
        "prompt": ["Colour?"] * 3, "chosen": ["Red.", "Blue.", "Black."], "rejected": ["Blue.", "Red.", "Pink."],
    })
    pq.write_table(table, tmp_path / "pairs.parquet")
    report = validate(str(tmp_path / "pairs.parquet"), cache=False)
    assert (report.images.images, report.images.decoded, report.images.corrupt) == (3, 2, 1)
    assert _by_kind(report)["image_corrupt"].line == 2


def test_text_data_has_no_image_section(tmp_path: Path) -> None:
    report = validate(str(_write(tmp_path / "t.jsonl", [{"messages": _turns("Hi <image>?")}] * 2)), cache=False)
    assert report.images is None and not any(p.kind.startswith("image") for p in report.problems)


def test_image_tokens_are_counted_with_the_models_processor(tmp_path: Path, tiny_vlm_dir: Path) -> None:
    from transformers import AutoProcessor

    data = write_llava_rows(tmp_path / "llava")
    report = validate(str(data), model=str(tiny_vlm_dir), cache=False)
    im = report.images
    assert im.processor == str(tiny_vlm_dir) and im.decoded == 24
    # the processor's own expansion of the first row, less the same turn without its image
    processor = AutoProcessor.from_pretrained(str(tiny_vlm_dir), use_fast=False)
    row = json.loads(data.read_text().splitlines()[0])
    text = processor.apply_chat_template(row["messages"][:1], tokenize=False)
    ids = processor(text=[text], images=[[Image.open(data.parent / row["images"][0])]])["input_ids"][0]
    plain = processor.tokenizer(text.replace("<image>", ""), add_special_tokens=False)["input_ids"]
    assert im.max_row_image_tokens == len(ids) - len(plain) > 4
    assert im.image_tokens == round(im.tokens_per_image * 24)
    assert report.ready, [p.message for p in report.problems if p.blocking]


def test_validate_shows_the_images_and_names_the_broken_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli_main import run_main

    data = write_llava_rows(tmp_path / "llava", rows=12)
    (data.parent / "images" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = run_main(capsys, "validate", str(data))
    assert out.returncode == 1
    assert "Images (images): 12 in 12 row(s), 10 decoded, 0 missing, 2 corrupt; 32x32 to 64x48" in out.stdout
    assert "image_corrupt line 2" in out.stdout and "img1.png does not decode" in out.stdout
    report = json.loads(run_main(capsys, "validate", str(data), "--json").stdout)
    assert report["images"]["corrupt"] == 2 and report["methods"]["sft"]["status"] == "incompatible"
