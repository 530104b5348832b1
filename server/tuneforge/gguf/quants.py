"""The GGUF file types tuneforge can produce, by the names llama.cpp uses.

`f32`, `f16` and `bf16` come straight from llama.cpp's converter; every other type is made from the
f16 file by llama.cpp's quantizer (`llama_model_quantize`, the code behind `llama-quantize`). The
importance-matrix types (IQ*) are left out: they need a calibration run tuneforge does not do.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..errors import TuneforgeError


class QuantType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # lower case, as users type it: q4_k_m
    ftype: str  # llama_cpp constant: LLAMA_FTYPE_MOSTLY_Q4_K_M
    bits_per_weight: float  # llama.cpp's nominal figure, for size estimates
    converted: bool = False  # made by the converter (float types), not the quantizer

    @property
    def tag(self) -> str:
        """The file-name tag that `llama-server -hf repo:TAG` and `ollama run hf.co/repo:TAG` select."""
        return self.name.upper()


_TABLE = [
    QuantType(name="f32", ftype="LLAMA_FTYPE_ALL_F32", bits_per_weight=32.0, converted=True),
    QuantType(name="f16", ftype="LLAMA_FTYPE_MOSTLY_F16", bits_per_weight=16.0, converted=True),
    QuantType(name="bf16", ftype="LLAMA_FTYPE_MOSTLY_BF16", bits_per_weight=16.0, converted=True),
    QuantType(name="q8_0", ftype="LLAMA_FTYPE_MOSTLY_Q8_0", bits_per_weight=8.5),
    QuantType(name="q6_k", ftype="LLAMA_FTYPE_MOSTLY_Q6_K", bits_per_weight=6.56),
    QuantType(name="q5_k_m", ftype="LLAMA_FTYPE_MOSTLY_Q5_K_M", bits_per_weight=5.69),
    QuantType(name="q5_k_s", ftype="LLAMA_FTYPE_MOSTLY_Q5_K_S", bits_per_weight=5.54),
    QuantType(name="q5_1", ftype="LLAMA_FTYPE_MOSTLY_Q5_1", bits_per_weight=6.0),
    QuantType(name="q5_0", ftype="LLAMA_FTYPE_MOSTLY_Q5_0", bits_per_weight=5.5),
    QuantType(name="q4_k_m", ftype="LLAMA_FTYPE_MOSTLY_Q4_K_M", bits_per_weight=4.89),
    QuantType(name="q4_k_s", ftype="LLAMA_FTYPE_MOSTLY_Q4_K_S", bits_per_weight=4.58),
    QuantType(name="q4_1", ftype="LLAMA_FTYPE_MOSTLY_Q4_1", bits_per_weight=5.0),
    QuantType(name="q4_0", ftype="LLAMA_FTYPE_MOSTLY_Q4_0", bits_per_weight=4.5),
    QuantType(name="q3_k_l", ftype="LLAMA_FTYPE_MOSTLY_Q3_K_L", bits_per_weight=4.27),
    QuantType(name="q3_k_m", ftype="LLAMA_FTYPE_MOSTLY_Q3_K_M", bits_per_weight=3.91),
    QuantType(name="q3_k_s", ftype="LLAMA_FTYPE_MOSTLY_Q3_K_S", bits_per_weight=3.5),
    QuantType(name="q2_k", ftype="LLAMA_FTYPE_MOSTLY_Q2_K", bits_per_weight=3.0),
]
QUANTS: dict[str, QuantType] = {q.name: q for q in _TABLE}
DEFAULT_QUANTS = ["f16", "q4_k_m"]
#: the file Ollama's Modelfile points at, first one present wins
MODELFILE_PREFERENCE = ["q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q6_k", "q8_0", "q4_0", "f16", "bf16", "f32"]


def parse_quants(quants: list[str] | str | None) -> list[QuantType]:
    """`["f16", "Q4_K_M"]` or `"f16,q4_k_m"` -> the types, in order, without repeats."""
    if quants is None:
        quants = list(DEFAULT_QUANTS)
    if isinstance(quants, str):
        quants = [quants]
    names: list[str] = []
    for item in quants:
        for part in str(item).split(","):
            name = part.strip().lower().replace("-", "_")
            if name and name not in names:
                names.append(name)
    if not names:
        raise TuneforgeError("No quantization type given.", f"Pass for example --quant f16,q4_k_m (known: {known()}).", code="gguf.no_quant")
    unknown = [n for n in names if n not in QUANTS]
    if unknown:
        raise TuneforgeError(
            f"Unknown quantization type{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            f"Use one or more of: {known()}.",
            details={"unknown": unknown, "known": list(QUANTS)},
            code="gguf.unknown_quant",
        )
    return [QUANTS[n] for n in names]


def known() -> str:
    return ", ".join(QUANTS)


def estimate_bytes(n_params: int, quant: QuantType) -> int:
    """A size estimate with a margin: small models keep more tensors at higher precision."""
    nominal = n_params * quant.bits_per_weight / 8
    return int(nominal * (1.0 if quant.converted else 1.35)) + 16 * 2**20


def parse_min_agreement(values: list[str] | str | dict[str, float] | None) -> dict[str, float]:
    """The agreement gate's thresholds asked for: `{"q4_k_m": 0.7}`, or `["q4_k_m=0.7", "q8_0=0.85"]` / `"q4_k_m=0.7,q8_0=0.85"`
    (CLI). Each a share between 0 and 1 of a known type; the defaults (gguf_checks.MIN_AGREEMENT) fill in the rest."""
    if not values:
        return {}
    pairs: list[tuple[str, object]] = []
    if isinstance(values, dict):
        pairs = list(values.items())
    else:
        for item in [values] if isinstance(values, str) else values:
            for part in str(item).split(","):
                if not part.strip():
                    continue
                name, sep, share = part.partition("=")
                if not sep:
                    raise TuneforgeError(f"--min-agreement {part.strip()!r} names no share.",
                                         "Write it as TYPE=SHARE, e.g. --min-agreement q4_k_m=0.7 (a share of the prompts, 0 to 1).",
                                         code="gguf.bad_min_agreement")
                pairs.append((name, share))
    out: dict[str, float] = {}
    for name, share in pairs:
        key = str(name).strip().lower().replace("-", "_")
        if key not in QUANTS:
            raise TuneforgeError(f"--min-agreement names an unknown quantization type: {name!r}.", f"Use one of: {known()}.",
                                 code="gguf.bad_min_agreement", details={"unknown": [key], "known": list(QUANTS)})
        try:
            value = float(str(share).strip())
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise TuneforgeError(f"--min-agreement {key}={share} is not a share between 0 and 1.",
                                 f"Write the share of prompts that must agree, e.g. {key}=0.7 for 70%.", code="gguf.bad_min_agreement")
        out[key] = value
    return out
