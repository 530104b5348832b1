"""What a run reads from this machine: for each local input in its config, exactly the files it opens.

A cloud backend uploads these and nothing else: the data files the dataset reader reads (the rule in
templates/_shared/data_files.py: no hidden files, the train split when the names say so) and a model
folder's config, tokenizer and weight files (the rule in templates/_shared/model_files.py). Never
Python files (a model's own code), `.git`, `.env` or anything else that happens to sit in the folder.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError
from ..records import RunInput
from ..templates._shared.data_files import DataFilesError, data_files
from ..templates._shared.model_files import is_model_file


def model_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.iterdir() if p.is_file() and is_model_file(p))
    if not any(p.name in ("config.json", "adapter_config.json") for p in files):
        raise ConfigError(f"The model folder {root} has no config.json (nor adapter_config.json).",
                          "Point model at a folder written by save_pretrained, or at a Hub id.", code="config.model_folder_invalid")
    return files


def dataset_files(root: Path, what: str) -> list[Path]:
    try:
        files, _kind, _notes = data_files(root)
    except DataFilesError as exc:
        raise ConfigError(f"The {what} {root}: {exc}.", "Run `tuneforge validate` on it and follow its fix.",
                          code="dataset.no_data_files") from None
    return files


def run_inputs(config: RunConfig) -> list[RunInput]:
    """Every local input of the run with the files it reads (Hub ids are read by the job itself)."""
    inputs: list[RunInput] = []
    model = Path(config.model)
    if model.is_absolute():
        inputs.append(RunInput(field="model", root=model, files=[model] if model.is_file() else model_files(model)))
    block = config.eval.path if config.eval is not None else None
    for field, ref, what in (("dataset", config.dataset.path, "dataset"), ("eval_dataset", config.dataset.eval_path, "eval dataset"),
                             ("eval_block", block, "eval block's held-out file")):
        if ref and Path(ref).is_absolute():
            files = dataset_files(Path(ref), what)
            if field != "eval_block":  # a vision dataset's images travel with it (doctor/images.py)
                from ..doctor.images import referenced_image_files

                base = Path(ref).resolve() if Path(ref).is_dir() else Path(ref).resolve().parent
                files += [f for f in referenced_image_files(Path(ref)) if f not in files and f.is_relative_to(base)]
            inputs.append(RunInput(field=field, root=Path(ref), files=files))
    return inputs
