"""Write the demo's preference pairs (deterministic, seeded; rerun to regenerate).

For the pipeline demo (`tuneforge demo --pipeline`: SFT, then DPO on the SFT model, then GGUF), DPO needs
pairs for the same task as the SFT data: a support ticket, the right routing JSON (chosen) and a near miss
(rejected: the same JSON with one field wrong — the urgency flipped, the category and its team swapped, or
the team alone wrong, the mistakes a half-trained model makes). The pairs come from the tickets the demo
already ships, so they share its split:

  preferences.jsonl       from train.jsonl's tickets (training phrasings only)
  preferences_eval.jsonl  from heldout.json's tickets (held-out phrasings: never in any training file)

`check` fails the run when an eval prompt appears among the training prompts (of the SFT data or the pairs),
or when a chosen answer equals its rejected one.

Usage: python scripts/make_demo_preferences.py   (after scripts/make_demo_dataset.py)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "server" / "tuneforge" / "data" / "demo"
SEED = 20261202
TEAMS = {"billing": "finance", "shipping": "logistics", "technical": "engineering", "account": "identity"}
TRAIN_PAIRS = 160


def answer(labels: dict[str, str]) -> str:
    return json.dumps({"category": labels["category"], "urgency": labels["urgency"], "team": labels["team"]})


def near_miss(labels: dict[str, str], rng: random.Random) -> dict[str, str]:
    wrong = dict(labels)
    kind = rng.choice(["urgency", "category", "team"])
    if kind == "urgency":
        wrong["urgency"] = "low" if labels["urgency"] == "high" else "high"
    elif kind == "category":
        wrong["category"] = rng.choice([c for c in TEAMS if c != labels["category"]])
        wrong["team"] = TEAMS[wrong["category"]]
    else:
        wrong["team"] = rng.choice([t for t in TEAMS.values() if t != labels["team"]])
    return wrong


def pair(prompt: str, labels: dict[str, str], rng: random.Random) -> dict[str, str]:
    return {"prompt": prompt, "chosen": answer(labels), "rejected": answer(near_miss(labels, rng))}


def train_tickets() -> list[tuple[str, dict[str, str]]]:
    rows = [json.loads(line) for line in (DEMO / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["messages"][0]["content"], json.loads(r["messages"][1]["content"])) for r in rows]


def check(train: list[dict[str, str]], evals: list[dict[str, str]], sft_prompts: set[str]) -> None:
    seen = sft_prompts | {p["prompt"] for p in train}
    problems = [f"held-out prompt in training: {p['prompt']!r}" for p in evals if p["prompt"] in seen]
    problems += [f"chosen equals rejected: {p['prompt']!r}" for p in train + evals if p["chosen"] == p["rejected"]]
    if problems:
        raise SystemExit("\n".join(problems[:10]))


def main() -> None:
    rng = random.Random(SEED)
    tickets = train_tickets()
    chosen = rng.sample(tickets, min(TRAIN_PAIRS, len(tickets)))
    train = [pair(prompt, labels, rng) for prompt, labels in chosen]
    heldout = json.loads((DEMO / "heldout.json").read_text(encoding="utf-8"))
    evals = [pair(h["prompt"], h, rng) for h in heldout]
    check(train, evals, {prompt for prompt, _ in tickets})
    for name, rows in (("preferences.jsonl", train), ("preferences_eval.jsonl", evals)):
        (DEMO / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(train)} training pairs and {len(evals)} held-out pairs to {DEMO}")


if __name__ == "__main__":
    main()
