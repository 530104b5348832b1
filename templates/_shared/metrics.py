"""Held-out answer metrics and their aggregation (stdlib only; `rouge-score` used when importable).

One place for the eval block of every training template (templates/_finish.py), for
`tuneforge eval` (templates/eval.py) and for the server (names, options, the before/after table).

A metric spec is a name or a mapping `{"name": ..., <options>}`:
- `exact_match`: the answer equals the reference after normalising case and spaces;
- `contains`: the reference (or option `text`) appears in the answer (case-insensitive);
- `regex`: option `pattern` (else the reference as a pattern) is found in the answer;
- `json_fields`: the answer's first JSON object has the reference's values for option `fields`
  (all of the reference object's keys when none are named); scores the share of fields right;
- `rouge_l`: ROUGE-L F1 between the answer and the reference (rouge-score's, else the same LCS F1 here);
- `perplexity`: exp of the mean negative log-likelihood of the reference tokens (needs the model, so
  computed by the template; aggregated here);
- `reward:<name>`: a GRPO reward function (templates/grpo.py implements each name in rewards.py).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .rewards import REWARD_FUNCTIONS

#: metric name -> what it scores
METRICS = {
    "exact_match": "answer equals the reference (case and spaces normalised)",
    "contains": "the reference (or option text) appears in the answer",
    "regex": "option pattern (else the reference) is found in the answer",
    "json_fields": "share of the reference's JSON fields (or option fields) the answer's JSON gets right",
    "rouge_l": "ROUGE-L F1 against the reference",
    "perplexity": "exp(mean NLL) of the reference given the prompt (lower is better)",
}
#: metrics that need the model itself, not only its answer
MODEL_METRICS = ("perplexity",)
REWARD_PREFIX = "reward:"
#: how many samples (prompt, reference, answers) a result keeps
SAMPLES_KEPT = 5


def metric_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.get("name"))


def metric_label(spec: Any) -> str:
    """The column name in a table: the name, with a regex/json_fields/contains option when given."""
    name = metric_name(spec)
    if isinstance(spec, dict) and spec.get("label"):
        return str(spec["label"])
    return name


def unknown_metrics(specs: list[Any]) -> list[str]:
    bad = []
    for spec in specs:
        name = metric_name(spec)
        if name.startswith(REWARD_PREFIX):
            if name[len(REWARD_PREFIX):] not in REWARD_FUNCTIONS:
                bad.append(name)
        elif name not in METRICS:
            bad.append(name)
    return bad


def metric_choices() -> str:
    names = sorted(METRICS) + [REWARD_PREFIX + r for r in sorted(REWARD_FUNCTIONS)]
    return ", ".join(names)


def normalise(text: Any) -> str:
    return " ".join(str(text if text is not None else "").strip().lower().split())


def exact_match(answer: str, reference: Any, **_: Any) -> float:
    return float(normalise(answer) == normalise(reference))


def contains(answer: str, reference: Any, text: str | None = None, **_: Any) -> float:
    needle = normalise(text if text is not None else reference)
    return float(bool(needle) and needle in normalise(answer))


def regex(answer: str, reference: Any, pattern: str | None = None, flags: str = "", **_: Any) -> float:
    pat = pattern if pattern is not None else str(reference or "")
    fl = (re.IGNORECASE if "i" in flags else 0) | (re.DOTALL if "s" in flags else 0) | (re.MULTILINE if "m" in flags else 0)
    try:
        return float(re.search(pat, answer or "", fl) is not None)
    except re.error:
        return 0.0


def first_json(text: Any) -> Any:
    """The first JSON value in a text (whole, fenced, or the first {...} in it), else None."""
    if isinstance(text, (dict, list)):
        return text
    s = str(text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", s, re.DOTALL)
    candidates = [s] + ([fenced.group(1)] if fenced else [])
    decoder = json.JSONDecoder()
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            pass
    for i, ch in enumerate(s):
        if ch in "{[":
            try:
                return decoder.raw_decode(s[i:])[0]
            except ValueError:
                continue
    return None


def json_fields(answer: str, reference: Any, fields: list[str] | None = None, **_: Any) -> float | None:
    got, want = first_json(answer), first_json(reference)
    if not isinstance(want, dict) and not fields:
        return None  # nothing to compare with: the row is left out of the mean
    if not isinstance(got, dict):
        return 0.0
    if not isinstance(want, dict):
        return float(all(f in got for f in fields))
    keys = list(fields or want.keys())
    if not keys:
        return 0.0
    return sum(1 for k in keys if k in got and normalise(got[k]) == normalise(want.get(k))) / len(keys)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(answer: str, reference: Any, **_: Any) -> float:
    try:
        from rouge_score import rouge_scorer  # the package, when installed (the templates' PEP 723 headers name it)

        return float(rouge_scorer.RougeScorer(["rougeL"]).score(str(reference or ""), answer or "")["rougeL"].fmeasure)
    except ImportError:
        pass
    a, r = _tokens(answer), _tokens(str(reference or ""))
    if not a or not r:
        return 0.0
    lcs = lcs_length(a, r)
    if not lcs:
        return 0.0
    p, rec = lcs / len(a), lcs / len(r)
    return 2 * p * rec / (p + rec)


SCORERS = {"exact_match": exact_match, "contains": contains, "regex": regex, "json_fields": json_fields, "rouge_l": rouge_l}


def score_answers(specs: list[Any], answers: list[str], references: list[Any]) -> dict[str, list[float | None]]:
    """Per-row scores for every answer-only metric (model metrics and rewards are left to the caller)."""
    out: dict[str, list[float | None]] = {}
    for spec in specs:
        name = metric_name(spec)
        fn = SCORERS.get(name)
        if fn is None:
            continue
        opts = {k: v for k, v in spec.items() if k not in ("name", "label")} if isinstance(spec, dict) else {}
        own_target = (name == "regex" and "pattern" in opts) or (name == "contains" and "text" in opts) or \
            (name == "json_fields" and bool(opts.get("fields")))
        out[metric_label(spec)] = [None if ref is None and not own_target else fn(ans, ref, **opts)
                                   for ans, ref in zip(answers, references)]
    return out


def mean(values: list[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(sum(vals) / len(vals), 6) if vals else None


def aggregate(per_row: dict[str, list[float | None]]) -> dict[str, float | None]:
    """Per-row scores -> one mean per metric (rows without a score are left out)."""
    return {label: mean(vals) for label, vals in per_row.items()}


def perplexity(nlls: list[float | None], counts: list[int]) -> float | None:
    """Token-weighted exp(mean NLL) from per-row summed NLLs and token counts."""
    pairs = [(n, c) for n, c in zip(nlls, counts) if n is not None and c]
    if not pairs:
        return None
    total = sum(c for _, c in pairs)
    return round(math.exp(min(50.0, sum(n for n, _ in pairs) / total)), 6)


def samples(prompts: list[str], references: list[Any], answers: dict[str, list[str]], keep: int = SAMPLES_KEPT) -> list[dict]:
    """The first `keep` rows: prompt, reference and each answer by name ("before", "after", a model...)."""
    rows = []
    for i, prompt in enumerate(prompts[:keep]):
        row = {"prompt": prompt, "reference": references[i] if i < len(references) else None}
        row.update({k: v[i] for k, v in answers.items() if i < len(v)})
        rows.append(row)
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def before_after_rows(block: dict) -> list[tuple[str, str, str]]:
    """(metric, before, after) for every metric of a result's `eval` block."""
    before, after = block.get("before") or {}, block.get("after") or {}
    names = list(dict.fromkeys(list(before) + list(after)))
    return [(n, fmt(before.get(n)), fmt(after.get(n))) for n in names]


def markdown_table(block: dict) -> list[str]:
    """The before/after table and the samples, as markdown lines (the model card)."""
    rows = before_after_rows(block)
    if not rows:
        return []
    lines = [f"## Evaluation ({block.get('rows')} held-out rows from `{block.get('source')}`, greedy decoding)", "",
             "| metric | before | after |", "|---|---|---|"]
    lines += [f"| {n} | {b} | {a} |" for n, b, a in rows]
    shown = block.get("samples") or []
    if shown:
        lines += ["", "### Samples", ""]
        for s in shown:
            lines += [f"**Prompt:** {s.get('prompt')}", "", f"- reference: {s.get('reference')}",
                      f"- before: {s.get('before')}", f"- after: {s.get('after')}", ""]
    return lines


def read_rows(path: str) -> list[dict]:
    """Rows of a .jsonl / .json / .csv file (stdlib); other formats are read by the template with `datasets`."""
    import csv

    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, list) else list(data.get("data") or data.get("rows") or [])
    if path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    raise ValueError(f"{path}: not a .jsonl, .json or .csv file")


#: columns looked at, in order, for a prompt and for a reference when the config names none
PROMPT_COLUMNS = ("prompt", "question", "instruction", "input", "query")
REFERENCE_COLUMNS = ("reference", "answer", "completion", "output", "response", "solution", "target", "expected",
                     "ground_truth", "chosen")


def _content(value: Any) -> str:
    if isinstance(value, list):  # a message list: the last user turn
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") in ("user", "human")]
        return str(users[-1] if users else (value[-1].get("content") if value and isinstance(value[-1], dict) else ""))
    return "" if value is None else str(value)


def prompts_and_references(rows: list[dict], prompt_column: str | None, reference_column: str | None
                           ) -> tuple[list[str], list[Any], list[dict]]:
    """(prompts, references, the rows kept): columns named, else the first known column present; a
    `messages` row gives its last user turn as the prompt and its last assistant turn as the reference."""
    prompts, refs, kept = [], [], []
    for row in rows:
        if not isinstance(row, dict):
            continue
        pcol = prompt_column or next((c for c in PROMPT_COLUMNS if c in row), None)
        rcol = reference_column or next((c for c in REFERENCE_COLUMNS if c in row), None)
        msgs = row.get("messages") if isinstance(row.get("messages"), list) else None
        if pcol and pcol in row:
            prompt = _content(row[pcol])
        elif msgs:
            prompt = _content([m for m in msgs if isinstance(m, dict) and m.get("role") != "assistant"])
        else:
            continue
        if rcol and rcol in row:
            ref = row[rcol]
            ref = _content(ref) if isinstance(ref, list) and not (ref and isinstance(ref[-1], dict) and ref[-1].get("role") == "assistant") \
                else (ref[-1].get("content") if isinstance(ref, list) and ref else ref)
        elif msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
            ref = msgs[-1].get("content")
        else:
            ref = None
        prompts.append(prompt)
        refs.append(ref)
        kept.append(row)
    return prompts, refs, kept
