"""Write the demo dataset that ships with tuneforge (deterministic; rerun to regenerate).

The task: support-ticket triage. The assistant answers every customer message with one JSON object
{"category": ..., "urgency": ..., "team": ...}, where team is a fixed in-house routing fact
(billing->finance, shipping->logistics, technical->engineering, account->identity). A base chat model
answers in prose and cannot know the routing, so the before/after difference is plain to see.

Outputs (server/tuneforge/data/demo/):
  train.jsonl    chat rows ({"messages": [...]}) for training
  eval.jsonl     rows from the same templates with other fills, for eval loss
  heldout.json   prompts from templates never used in training, with expected labels

Usage: python scripts/make_demo_dataset.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "server" / "tuneforge" / "data" / "demo"
TEAMS = {"billing": "finance", "shipping": "logistics", "technical": "engineering", "account": "identity"}

PRODUCTS = ["Aurora headphones", "Nimbus router", "Pixel frame", "Vega blender", "Orbit smartwatch", "Atlas backpack",
            "Comet e-reader", "Zephyr fan", "Luma desk lamp", "Terra water bottle"]
NAMES = ["Ana", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam"]

TEMPLATES = {
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
        # held out
        "There is an unknown charge of ${amount} on my statement from your shop.",
        "Can you split the payment for order #{order} across two cards?",
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
        # held out
        "The courier left my {product} in the rain and it is soaked.",
        "Is it possible to ship order #{order} to a pickup locker instead?",
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
        # held out
        "My {product} reboots by itself several times a day.",
        "The {product} shows error E{code} after I reset it to factory settings.",
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
        # held out
        "I think my account was hacked: there are orders I never placed.",
        "How can I download a copy of all the data in my account?",
    ],
}
HELD_OUT_PER_CATEGORY = 2
URGENT = ["This is urgent, please help today.", "I need this fixed immediately.", "Please answer ASAP, it is urgent."]
CALM = ["No rush, thanks.", "Thanks in advance.", "Whenever you have time.", ""]


def fill(template: str, rng: random.Random) -> str:
    return template.format(product=rng.choice(PRODUCTS), order=rng.randint(10000, 99999), amount=rng.randint(9, 499),
                           code=rng.randint(100, 999), name=rng.choice(NAMES))


def ticket(category: str, template: str, rng: random.Random) -> tuple[str, str]:
    urgency = "high" if rng.random() < 0.4 else "low"
    tail = rng.choice(URGENT if urgency == "high" else CALM)
    text = f"{fill(template, rng)} {tail}".strip()
    return text, urgency


def answer(category: str, urgency: str) -> str:
    return json.dumps({"category": category, "urgency": urgency, "team": TEAMS[category]})


def main() -> None:
    rng = random.Random(20261121)
    OUT.mkdir(parents=True, exist_ok=True)
    train, evals, heldout = [], [], []
    for category, templates in TEMPLATES.items():
        seen_templates, unseen = templates[:-HELD_OUT_PER_CATEGORY], templates[-HELD_OUT_PER_CATEGORY:]
        for _ in range(80):
            text, urgency = ticket(category, rng.choice(seen_templates), rng)
            train.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer(category, urgency)}]})
        for _ in range(10):
            text, urgency = ticket(category, rng.choice(seen_templates), rng)
            evals.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer(category, urgency)}]})
        for template in unseen:
            for _ in range(2):
                text, urgency = ticket(category, template, rng)
                heldout.append({"prompt": text, "category": category, "urgency": urgency, "team": TEAMS[category]})
    rng.shuffle(train)
    rng.shuffle(evals)
    rng.shuffle(heldout)
    (OUT / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    (OUT / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals), encoding="utf-8")
    (OUT / "heldout.json").write_text(json.dumps(heldout, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(train)} train, {len(evals)} eval, {len(heldout)} held-out rows to {OUT}")


if __name__ == "__main__":
    main()
