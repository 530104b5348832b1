"""Reading a training template's run config: `--config PATH` (JSON or YAML), its keys checked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _events import fail

#: the top-level keys of tuneforge's RunConfig; anything else (an `env:` block, a typo) stops the run
KNOWN_TOP_KEYS = {
    "model", "dataset", "method", "peft", "train", "method_args", "max_length", "packing", "padding_free",
    "assistant_only_loss", "system_prompt", "seed", "output_dir", "merge", "push_to_hub", "hub_private",
    "trackio", "launch", "timeout_seconds", "eval_prompts", "max_new_tokens", "eval", "watchdog", "max_cost_usd",
    "resume_from_checkpoint", "max_restarts", "speed",
}


def load_config(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        cfg = json.loads(text)
    else:
        import yaml

        cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict):
        fail(f"{path} does not hold a mapping")
    unknown = set(cfg) - KNOWN_TOP_KEYS
    if unknown:  # e.g. an `env:` block: never honoured
        fail(f"unknown config keys {sorted(unknown)} in {path}")
    return cfg


def config_from_args(argv: list[str] | None, doc: str) -> dict:
    """`--config PATH` from the command line, read and checked."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="tuneforge run config (JSON or YAML)")
    args = parser.parse_args(argv)
    return load_config(args.config)
