"""A vision dataset's images travel with a cloud job: the run's inputs name them and the payload keeps their
places beside the data file, so the template finds them by the same relative paths."""

from __future__ import annotations

from pathlib import Path

from tuneforge.backends.hf.payload import MOUNT, Payload, ship
from tuneforge.config import RunConfig
from tuneforge.jobs.inputs import run_inputs
from vlm_fixtures import write_llava_rows


def test_the_images_a_dataset_names_are_uploaded_in_their_places(tmp_path: Path) -> None:
    data = write_llava_rows(tmp_path / "llava", rows=12)
    (tmp_path / "llava" / "images" / "unused.png").write_bytes(b"not named by any row")
    config = RunConfig.model_validate({"model": "org/some-vlm", "method": "sft", "dataset": {"path": str(data)}})
    (dataset,) = [i for i in run_inputs(config) if i.field == "dataset"]
    names = sorted(f.name for f in dataset.files)
    assert names == sorted(["train.jsonl"] + [f"img{i}.png" for i in range(6)])
    payload = Payload(config_path=tmp_path / "c.json")
    seen = ship(payload, dataset, "inputs/dataset")
    assert seen == f"{MOUNT}/inputs/dataset/train.jsonl"
    assert "inputs/dataset/images/img3.png" in payload.files and "inputs/dataset/images/unused.png" not in payload.files
