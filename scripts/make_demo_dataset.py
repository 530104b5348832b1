"""Write the demo dataset that ships with tuneforge (deterministic, seeded; rerun to regenerate).

The task: support-ticket triage. The assistant answers every customer message with one JSON object
{"category": ..., "urgency": ..., "team": ...}, where team is a fixed in-house routing fact
(billing->finance, shipping->logistics, technical->engineering, account->identity). A base chat model
answers in prose and cannot know the routing, so the before/after difference is plain to see.

A ticket is a body (a phrasing template with slots filled) and an urgency cue. Train and held-out
use separate pools for both, so held-out tickets are phrased in ways training never shows:
  TRAIN_TEMPLATES   / TRAIN_CUES     -> train.jsonl only
  HELDOUT_TEMPLATES / HELDOUT_CUES   -> eval.jsonl and heldout.json only
`check_disjoint` fails the run when a held-out template, cue, body or prompt (normalized: lower case,
punctuation and spacing folded) equals or is contained in a training one, or when a held-out template
shares a run of NGRAM words with a training template. Slot fills (products, order numbers, names) are
shared: they are not phrasings.

Outputs (server/tuneforge/data/demo/):
  train.jsonl    chat rows ({"messages": [...]}) for training, from the train pools
  eval.jsonl     the held-out tickets as chat rows with their expected answer, for eval loss
  heldout.json   the same held-out tickets, in the same order: prompt, expected labels, phrasing id

Usage: python scripts/make_demo_dataset.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "server" / "tuneforge" / "data" / "demo"
SEED = 20261201
TEAMS = {"billing": "finance", "shipping": "logistics", "technical": "engineering", "account": "identity"}
TRAIN_PER_CATEGORY = 80
HELDOUT_PER_TEMPLATE = 3
NGRAM = 5

PRODUCTS = ["Aurora headphones", "Nimbus router", "Pixel frame", "Vega blender", "Orbit smartwatch", "Atlas backpack",
            "Comet e-reader", "Zephyr fan", "Luma desk lamp", "Terra water bottle"]
NAMES = ["Ana", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam"]
SLOTS = {"product": "(?:" + "|".join(map(re.escape, PRODUCTS)) + ")", "order": r"\d{5}", "amount": r"\d{1,3}",
         "code": r"\d{3}", "name": "(?:" + "|".join(map(re.escape, NAMES)) + ")"}

TRAIN_TEMPLATES = {
    "billing": [
        "I was charged twice for my {product} order #{order}. Please refund one of the charges.",
        "My invoice for order #{order} shows ${amount} but the price was lower at checkout.",
        "Why did my card get billed ${amount} this month? I cancelled my subscription.",
        "Can I get a VAT invoice for order #{order}? My company needs it for accounting.",
        "The discount code was not applied to my {product}; I paid ${amount} instead of less.",
        "I returned the {product} two weeks ago and still have not received my refund.",
        "Your payment page took ${amount} from my account but says the order failed.",
        "Please change the billing address on my account invoice for order #{order}.",
        "I need to update the credit card used for my monthly plan.",
    ],
    "shipping": [
        "My {product} (order #{order}) has not arrived yet and tracking has not moved for a week.",
        "The parcel with my {product} was delivered to the wrong address.",
        "Can I change the delivery address for order #{order}? I am moving.",
        "The box arrived damaged and the {product} inside is crushed.",
        "Tracking says delivered but there is no {product} at my door.",
        "How long does shipping to Canada take for the {product}?",
        "I ordered express delivery for order #{order} but it came by normal post.",
        "Only half of order #{order} arrived; the {product} is missing from the box.",
        "Can you hold my parcel at the depot? I am away until next week.",
    ],
    "technical": [
        "My {product} will not turn on after the latest firmware update.",
        "The {product} keeps disconnecting from Wi-Fi every few minutes.",
        "The app crashes when I try to pair my {product}.",
        "Battery on my {product} drains in two hours even when idle.",
        "I get error code E{code} when I start the {product}.",
        "The {product} makes a loud buzzing noise when it runs.",
        "Bluetooth pairing fails on my {product} with my new phone.",
        "The screen of my {product} flickers and then goes black.",
        "Setup of the {product} stops at 90 percent every time.",
    ],
    "account": [
        "I cannot log in to my account; the password reset email never arrives.",
        "Please delete my account and all my personal data.",
        "Someone changed the email address on my account without my permission.",
        "How do I turn on two-factor authentication for my account?",
        "My account is locked after too many login attempts.",
        "I want to merge my two accounts into one; both use my name, {name}.",
        "Please update the name on my account to {name}.",
        "I no longer have access to the phone number linked to my account.",
        "The verification code for my account login is always rejected.",
    ],
}
HELDOUT_TEMPLATES = {
    "billing": [
        "There is an unknown charge of ${amount} on my statement from your shop.",
        "Can you split the payment for order #{order} across two cards?",
        "The receipt you emailed lists a {product} I never bought and the total is ${amount}.",
        "After the promotion ended you kept charging me the full monthly fee.",
        "Your store refunded me ${amount} less than what I originally paid.",
    ],
    "shipping": [
        "The courier left my {product} in the rain and it is soaked.",
        "Is it possible to ship order #{order} to a pickup locker instead?",
        "My {product} went to a neighbour three streets away according to the driver's photo.",
        "The estimated arrival date for order #{order} keeps slipping by another day.",
        "Customs is holding my {product} and asking for paperwork I do not have.",
    ],
    "technical": [
        "My {product} reboots by itself several times a day.",
        "The {product} shows error E{code} after I reset it to factory settings.",
        "Ever since I plugged it in, my {product} gets very hot within minutes.",
        "None of the buttons on the {product} respond, although the light is on.",
        "The companion app cannot find my {product} even when they sit side by side.",
    ],
    "account": [
        "I think my account was hacked: there are orders I never placed.",
        "How can I download a copy of all the data in my account?",
        "Signing in with my Google profile now opens an empty new profile instead of my old one.",
        "Your website says my username {name} is already taken, but that is me.",
        "I would like to transfer my profile and saved addresses to my partner's email.",
    ],
}
TRAIN_CUES = {
    "high": ["This is urgent, please help today.", "I need this fixed immediately.", "Please answer ASAP, it is urgent.",
             "Please hurry, this cannot wait.", "I need an answer within the hour."],
    "low": ["No rush, thanks.", "Thanks in advance.", "Whenever you have time.", "Just letting you know.", ""],
}
HELDOUT_CUES = {
    "high": ["It is an emergency, sort it out right now!", "Top priority for me: I am stuck until it is resolved.",
             "Reply straight away, the matter is critical."],
    "low": ["It is not pressing at all.", "Get back to me at your convenience.", "A reply sometime next week is fine."],
}
HIGH_SHARE = 0.4


def normalize(text: str) -> str:
    """Lower case, every run of non-alphanumerics (placeholders' braces included) folded to one space."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def phrasing_ids(pool: str, templates: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """{"train/billing/03": ("billing", template), ...}: the stable id of every phrasing in a pool."""
    return {f"{pool}/{cat}/{i:02d}": (cat, t) for cat, ts in templates.items() for i, t in enumerate(ts, 1)}


TRAIN_PHRASINGS = phrasing_ids("train", TRAIN_TEMPLATES)
HELDOUT_PHRASINGS = phrasing_ids("heldout", HELDOUT_TEMPLATES)


def template_regex(template: str) -> str:
    parts = re.split(r"\{(\w+)\}", template)
    return "".join(SLOTS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))


_ALL_CUES = "|".join(re.escape(c) for cues in (TRAIN_CUES, HELDOUT_CUES) for cs in cues.values() for c in cs if c)
_MATCHERS = {pid: re.compile(template_regex(t) + rf"(?: (?:{_ALL_CUES}))?")
             for pid, (_, t) in {**TRAIN_PHRASINGS, **HELDOUT_PHRASINGS}.items()}


def phrasings_of(prompt: str) -> list[str]:
    """The ids of every phrasing (train or held-out) whose template, filled and followed by a cue, is this prompt."""
    return [pid for pid, rx in _MATCHERS.items() if rx.fullmatch(prompt)]


def fill(template: str, rng: random.Random) -> str:
    return template.format(product=rng.choice(PRODUCTS), order=rng.randint(10000, 99999), amount=rng.randint(9, 499),
                           code=rng.randint(100, 999), name=rng.choice(NAMES))


def ticket(category: str, phrasing: str, template: str, cues: dict[str, list[str]], rng: random.Random) -> dict:
    urgency = "high" if rng.random() < HIGH_SHARE else "low"
    body = fill(template, rng)
    prompt = f"{body} {rng.choice(cues[urgency])}".strip()
    return {"prompt": prompt, "category": category, "urgency": urgency, "team": TEAMS[category],
            "phrasing": phrasing, "body": body}


def answer(t: dict) -> str:
    return json.dumps({"category": t["category"], "urgency": t["urgency"], "team": t["team"]})


def chat(t: dict) -> dict:
    return {"messages": [{"role": "user", "content": t["prompt"]}, {"role": "assistant", "content": answer(t)}]}


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def check_disjoint(train: list[dict], heldout: list[dict]) -> None:
    """Raise ValueError when any held-out phrasing, cue, body or prompt also appears in training."""
    problems = []
    train_templates = [t for _, t in TRAIN_PHRASINGS.values()]
    train_grams = set().union(*(ngrams(t) for t in train_templates))
    for pid, (_, template) in HELDOUT_PHRASINGS.items():
        if any(normalize(template) in normalize(t) or normalize(t) in normalize(template) for t in train_templates):
            problems.append(f"held-out template {pid} overlaps a training template: {template!r}")
        if shared := ngrams(template) & train_grams:
            problems.append(f"held-out template {pid} shares {' '.join(min(shared))!r} with a training template")
    train_cues = {normalize(c) for cs in TRAIN_CUES.values() for c in cs}
    for cue in (c for cs in HELDOUT_CUES.values() for c in cs):
        if not normalize(cue) or any(normalize(cue) in c or c in normalize(cue) for c in train_cues if c):
            problems.append(f"held-out urgency cue is empty or used in training: {cue!r}")
    train_texts = [normalize(t["prompt"]) for t in train]
    for t in heldout:
        for key in ("prompt", "body"):
            if any(normalize(t[key]) in text for text in train_texts):
                problems.append(f"held-out {key} appears in a training prompt: {t[key]!r}")
        if phrasings_of(t["prompt"]) != [t["phrasing"]]:
            problems.append(f"held-out prompt does not match exactly its own phrasing {t['phrasing']}: {t['prompt']!r}")
    for t in train:
        if phrasings_of(t["prompt"]) != [t["phrasing"]]:
            problems.append(f"training prompt does not match exactly its own phrasing {t['phrasing']}: {t['prompt']!r}")
    if problems:
        raise ValueError("held-out data overlaps training:\n  " + "\n  ".join(problems))


def build() -> tuple[list[dict], list[dict], list[dict]]:
    """(train.jsonl rows, eval.jsonl rows, heldout.json rows), the same on every run."""
    rng = random.Random(SEED)
    train, heldout = [], []
    for category in TEAMS:
        train_ids = [pid for pid, (cat, _) in TRAIN_PHRASINGS.items() if cat == category]
        for _ in range(TRAIN_PER_CATEGORY):
            pid = rng.choice(train_ids)
            train.append(ticket(category, pid, TRAIN_PHRASINGS[pid][1], TRAIN_CUES, rng))
    for pid, (category, template) in HELDOUT_PHRASINGS.items():
        heldout += [ticket(category, pid, template, HELDOUT_CUES, rng) for _ in range(HELDOUT_PER_TEMPLATE)]
    rng.shuffle(train)
    rng.shuffle(heldout)
    check_disjoint(train, heldout)
    labels = [{k: t[k] for k in ("prompt", "category", "urgency", "team", "phrasing")} for t in heldout]
    return [chat(t) for t in train], [chat(t) for t in heldout], labels


def render(train: list[dict], evals: list[dict], heldout: list[dict]) -> dict[str, str]:
    """The three files' text, exactly as shipped."""
    return {"train.jsonl": "".join(json.dumps(r) + "\n" for r in train),
            "eval.jsonl": "".join(json.dumps(r) + "\n" for r in evals),
            "heldout.json": json.dumps(heldout, indent=1) + "\n"}


def main() -> None:
    train, evals, heldout = build()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render(train, evals, heldout).items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(train)} train rows ({len(TRAIN_PHRASINGS)} phrasings) and {len(heldout)} held-out tickets "
          f"({len(HELDOUT_PHRASINGS)} other phrasings) as eval.jsonl and heldout.json to {OUT}")


if __name__ == "__main__":
    main()
