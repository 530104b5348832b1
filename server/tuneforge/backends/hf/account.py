"""What the hf backend checks about the account before it submits anything."""

from __future__ import annotations

from typing import Any

from ...errors import TuneforgeError


def check_account(me: dict[str, Any], push_to: str | None) -> None:
    """Refuse before submitting: a read-only token, an account that cannot pay, a push target out of reach."""
    name = me.get("name", "?")
    token_info = ((me.get("auth") or {}).get("accessToken")) or {}
    if token_info.get("role") == "read":
        raise TuneforgeError(
            f"The Hugging Face token of {name} is read-only: it cannot start jobs or push the model.",
            "Create a token with write access at https://huggingface.co/settings/tokens and set HF_TOKEN to it "
            "(or run `hf auth login --force`).",
            code="hf.token_read_only",
        )
    if me.get("isPro") is False and me.get("canPay") is False:
        raise TuneforgeError(
            f"The Hugging Face account {name} has no paid plan and no payment method: Jobs are billed per minute.",
            "Subscribe to PRO or add credits / a payment method at https://huggingface.co/settings/billing, "
            "or train here with --backend local.",
            code="hf.payment_required",
        )
    if push_to and "/" in push_to:
        owner = push_to.split("/", 1)[0]
        orgs = {o.get("name"): o for o in me.get("orgs") or []}
        if owner != name and owner not in orgs:
            raise TuneforgeError(
                f"The token's account {name} cannot push to {push_to}: {owner} is neither {name} nor one of its organizations.",
                f"Push to {name}/<model-name>, or use a token of an account that belongs to {owner}.",
                code="hf.push_forbidden",
            )
        if owner in orgs and orgs[owner].get("roleInOrg") == "read":
            raise TuneforgeError(
                f"{name} only has read access in the organization {owner}, so the job could not push to {push_to}.",
                f"Push to {name}/<model-name>, or ask an admin of {owner} for write access.",
                code="hf.push_forbidden",
            )
