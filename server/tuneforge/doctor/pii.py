"""Personal data in a row's text: email addresses, phone numbers and card-like numbers (Luhn-checked)."""

from __future__ import annotations

import re

# an address is a local-part character, '@', then a domain: matched at each '@' (a search for the whole
# pattern backtracks over the local part from every start: minutes on 200 KB of "a.a.a...@")
_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_NUMBER_RUN = re.compile(r"\d[\d ().-]{7,30}\d")  # starts with \d so that re can scan fast
_PHONE_SHAPE = re.compile(
    r"^\+\d|^\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$|^0\d{1,4}[ .-]\d{2,4}[ .-]?\d{2,4}(?:[ .-]\d{2,4})?$"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _has_email(text: str) -> bool:
    at = text.find("@", 1)
    while at > 0:
        if text[at - 1] in _LOCAL and _DOMAIN.match(text, at + 1):
            return True
        at = text.find("@", at + 1)
    return False


def find_pii(text: str) -> tuple[bool, bool, bool]:
    """(email, phone number, card-like number) present in the text."""
    email = _has_email(text)
    phone = card = False
    for match in _NUMBER_RUN.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end()] if match.end() < len(text) else " "
        candidate = match.group().strip()
        if before in "+(":
            candidate = before + candidate
            before = text[match.start() - 2] if match.start() > 1 else " "
        if before.isalnum() or before in "._" or after.isalnum() or after == "_":
            continue  # part of a longer token (an id, a decimal, a word)
        digits = re.sub(r"\D", "", candidate)
        if not card and 13 <= len(digits) <= 19 and not candidate.startswith(("+", "(")) \
                and re.fullmatch(r"\d{4}(?:[ -]?\d{3,4}){2,4}|\d{13,19}", candidate) and _luhn_ok(digits):
            card = True
        elif not phone and 9 <= len(digits) <= 15 and _PHONE_SHAPE.search(candidate):
            phone = True
        if phone and card:
            break
    return email, phone, card
