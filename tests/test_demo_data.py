"""The shipped demo data: held out means held out (no phrasing shared with training), and the scoring
counts an answer right only when category, urgency and team are all the expected ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tuneforge.actions.demo import parse_answer, score_answer, score_answers

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "server" / "tuneforge" / "data" / "demo"


def load_generator():
    spec = importlib.util.spec_from_file_location("make_demo_dataset", REPO / "scripts" / "make_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DEMO / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def user_text(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


TRAIN = jsonl("train.jsonl")
EVAL = jsonl("eval.jsonl")
HELDOUT = json.loads((DEMO / "heldout.json").read_text(encoding="utf-8"))
TRAIN_PROMPTS = [gen.normalize(user_text(r)) for r in TRAIN]


def test_no_held_out_or_eval_prompt_equals_or_is_contained_in_a_training_prompt():
    held = [gen.normalize(h["prompt"]) for h in HELDOUT] + [gen.normalize(user_text(r)) for r in EVAL]
    leaks = [p for p in held if any(p in t for t in TRAIN_PROMPTS)]
    assert not leaks, f"{len(leaks)} held-out prompts appear in training, e.g. {leaks[:3]}"
    assert not {json.dumps(r, sort_keys=True) for r in EVAL} & {json.dumps(r, sort_keys=True) for r in TRAIN}


def test_the_held_out_set_has_at_least_48_tickets_from_at_least_16_phrasings():
    assert len(HELDOUT) >= 48
    assert len({h["phrasing"] for h in HELDOUT}) >= 16
    assert {h["category"] for h in HELDOUT} == set(gen.TEAMS) and {h["urgency"] for h in HELDOUT} == {"high", "low"}


def test_eval_loss_is_computed_on_the_held_out_tickets_with_their_expected_answers():
    assert [user_text(r) for r in EVAL] == [h["prompt"] for h in HELDOUT]
    for row, h in zip(EVAL, HELDOUT):
        answer = json.loads(row["messages"][-1]["content"])
        assert answer == {"category": h["category"], "urgency": h["urgency"], "team": gen.TEAMS[h["category"]]}
        assert h["team"] == gen.TEAMS[h["category"]]


def test_train_and_held_out_phrasing_ids_are_disjoint_read_back_from_the_text():
    # The phrasing of every prompt is recovered from its text, by matching every template of both pools.
    train_ids = set()
    for prompt in (user_text(r) for r in TRAIN):
        matches = gen.phrasings_of(prompt)
        assert len(matches) == 1 and matches[0].startswith("train/"), (prompt, matches)
        train_ids.add(matches[0])
    held_ids = set()
    for h in HELDOUT:
        assert gen.phrasings_of(h["prompt"]) == [h["phrasing"]], h
        assert h["phrasing"] in gen.HELDOUT_PHRASINGS and gen.HELDOUT_PHRASINGS[h["phrasing"]][0] == h["category"]
        held_ids.add(h["phrasing"])
    assert train_ids and not train_ids & held_ids
    train_templates = {gen.normalize(t) for _, t in gen.TRAIN_PHRASINGS.values()}
    assert not {gen.normalize(t) for _, t in gen.HELDOUT_PHRASINGS.values()} & train_templates


def test_the_shipped_files_are_exactly_what_the_seeded_generator_writes():
    shipped = {name: (DEMO / name).read_text(encoding="utf-8") for name in ("train.jsonl", "eval.jsonl", "heldout.json")}
    assert gen.render(*gen.build()) == shipped
    assert gen.render(*gen.build()) == gen.render(*gen.build())


def test_the_generator_refuses_a_held_out_set_that_overlaps_training(monkeypatch):
    train, _, _ = gen.build()
    tickets = [{"prompt": user_text(r), "body": user_text(r), "phrasing": gen.phrasings_of(user_text(r))[0]} for r in train]
    with pytest.raises(ValueError, match="appears in a training prompt"):
        gen.check_disjoint(tickets, tickets[:5])  # held-out drawn from the training templates, as eval.jsonl once was
    monkeypatch.setitem(gen.HELDOUT_PHRASINGS, "heldout/billing/99", ("billing", gen.TRAIN_TEMPLATES["billing"][0]))
    with pytest.raises(ValueError, match="overlaps a training template"):
        gen.check_disjoint(tickets, [])


EXPECTED = {"category": "billing", "urgency": "high", "team": "finance"}


def test_an_answer_is_exact_only_when_category_urgency_and_team_are_all_right():
    right = score_answer('{"category": "billing", "urgency": "high", "team": "finance"}', EXPECTED)
    assert right == {"exact": True, "category": True, "urgency": True, "team": True}
    assert score_answer('Sure! {"category": "billing", "urgency": "high", "team": "finance"}', EXPECTED)["exact"]
    # the old score counted this right: valid JSON whose team matches its own category
    wrong_category = score_answer('{"category": "shipping", "urgency": "high", "team": "logistics"}', EXPECTED)
    assert wrong_category == {"exact": False, "category": False, "urgency": True, "team": False}
    wrong_urgency = score_answer('{"category": "billing", "urgency": "low", "team": "finance"}', EXPECTED)
    assert wrong_urgency == {"exact": False, "category": True, "urgency": False, "team": True}
    wrong_team = score_answer('{"category": "billing", "urgency": "high", "team": "logistics"}', EXPECTED)
    assert wrong_team == {"exact": False, "category": True, "urgency": True, "team": False}
    nothing = {"exact": False, "category": False, "urgency": False, "team": False}
    assert score_answer('{"category": "billing", "urgency": "high", "team": "finance"', EXPECTED) == nothing
    assert score_answer("{category: billing, urgency: high, team: finance}", EXPECTED) == nothing
    assert score_answer("I'm sorry to hear about your billing issue.", EXPECTED) == nothing
    assert parse_answer("{not json}") is None and parse_answer('["a"]') is None


def test_scores_are_shares_of_all_expected_tickets():
    shipping = {"category": "shipping", "urgency": "low", "team": "logistics"}
    answers = ['{"category": "billing", "urgency": "high", "team": "finance"}',   # all right
               '{"category": "billing", "urgency": "low", "team": "finance"}',    # urgency wrong
               '{"category": "shipping", "urgency": "low", "team": "finance"}',  # team wrong
               "not json"]
    scores = score_answers(answers, [EXPECTED, EXPECTED, shipping, shipping], eval_loss=1.5)
    assert scores.score == 0.25 and scores.eval_loss == 1.5
    assert (scores.category_accuracy, scores.urgency_accuracy, scores.team_accuracy) == (0.75, 0.5, 0.5)
    assert score_answers(answers[:1], [EXPECTED, EXPECTED]).score == 0.5  # a missing answer counts as wrong
    assert score_answers([], []).score == 0.0
