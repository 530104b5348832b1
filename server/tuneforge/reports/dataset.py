"""What the dataset doctor returns: one pydantic report that the CLI, the MCP server and the planner read.

The JSON shape is a contract: {"source", "format", "rows", "methods": {method: {"status", "mapping",
"reasons"}}, "problems": [{"kind", "line", "message", "count"}], "errors": [{"line", "message"}],
"token_stats"}. Fields beyond those are additions (a problem's `fix` and sample `lines`, `ready`...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ready", "needs_mapping", "incompatible"]


class MethodVerdict(BaseModel):
    """Whether one training method can use the data, and how."""

    status: Status
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Target column -> source column, the same direction as RunConfig.dataset.column_map.",
    )
    reasons: list[str] = Field(default_factory=list)


class Problem(BaseModel):
    """Something in the data that will hurt (or stop) training, with where it is and what to do."""

    kind: str = Field(description="A short word: duplicate, pii, empty, missing, type, role, no_assistant, ...")
    line: int | None = Field(default=None, description="1-based line (row for Parquet/Hub) of the first occurrence.")
    message: str
    count: int = Field(default=1, description="Rows affected.")
    lines: list[int] = Field(default_factory=list, description="A sample of the lines affected (first ones).")
    file: str | None = Field(default=None, description="The file of `line` when the source is a directory.")
    fix: str | None = None
    blocking: bool = Field(default=False, description="True when training would fail or learn nothing because of it.")


class ParseError(BaseModel):
    """A line that could not be read as a record."""

    line: int | None
    message: str
    file: str | None = None


class TokenStats(BaseModel):
    """Sequence lengths as the training template will see them (real tokenizer and chat template when a
    model is given; a character-based estimate otherwise)."""

    tokenizer: str | None = Field(default=None, description="The model whose tokenizer counted; None for an estimate.")
    estimated: bool = Field(description="True when counted as characters / 4 without a tokenizer.")
    method: str = Field(description="The method whose sequences were measured.")
    max_length: int
    rows: int = Field(description="Rows measured.")
    mean: float = 0.0
    p50: int = 0
    p95: int = 0
    max: int = 0
    total_tokens: int = 0
    truncated_rows: int = 0
    truncated_share: float = 0.0
    trainable_tokens: int | None = Field(default=None, description="Tokens inside the trained spans, after truncation.")
    zero_trainable_rows: int | None = None
    no_eos_rows: int | None = None
    double_bos_rows: int | None = None
    chat_template: Literal["model", "none", "not_needed"] | None = None
    notes: list[str] = Field(default_factory=list)


class ImageStats(BaseModel):
    """The images of a vision-language dataset (doctor/images.py): found, decoded with Pillow, counted."""

    column: str = Field(description="The column that holds them: images (a list per row) or image (one per row).")
    rows_with_images: int = 0
    images: int = Field(default=0, description="Image references read.")
    decoded: int = Field(default=0, description="Images that Pillow opened and decoded.")
    missing: int = 0
    corrupt: int = 0
    remote: int = Field(default=0, description="http(s) references: not fetched, not checked.")
    max_per_row: int = 0
    min_width: int | None = None
    min_height: int | None = None
    max_width: int | None = None
    max_height: int | None = None
    modes: dict[str, int] = Field(default_factory=dict, description="Pillow mode -> images (RGB, RGBA, L, P...).")
    formats: dict[str, int] = Field(default_factory=dict, description="Pillow format -> images (PNG, JPEG...).")
    placeholder_rows: int = Field(default=0, description="Rows that mark where images go (image parts or <image>).")
    mismatched_rows: int = Field(default=0, description="Rows whose placeholders do not match their images.")
    processor: str | None = Field(default=None, description="The model whose processor counted image tokens.")
    image_tokens: int | None = Field(default=None, description="Image tokens over all rows, per the processor.")
    tokens_per_image: float | None = None
    max_row_image_tokens: int | None = Field(default=None, description="The most image tokens one row holds.")
    notes: list[str] = Field(default_factory=list)


class DatasetReport(BaseModel):
    """Everything `tuneforge validate` found, for people (rendered) and machines (JSON)."""

    source: str
    format: str = Field(description="messages, sharegpt, alpaca, prompt_completion, text, preference, "
                        "preference_implicit, unpaired_preference, prompt_only, unknown or empty.")
    conversational: bool = False
    rows: int
    method: str = Field(default="auto", description="The method asked about.")
    ready: bool = Field(default=False, description="The requested method (auto: some method) is ready.")
    methods: dict[str, MethodVerdict] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)
    errors: list[ParseError] = Field(default_factory=list)
    error_count: int = Field(default=0, description="All unreadable lines (`errors` lists the first ones).")
    columns: dict[str, str] = Field(default_factory=dict, description="Column -> the kind of value it mostly holds.")
    token_stats: TokenStats | None = None
    images: ImageStats | None = Field(default=None, description="Vision-language data: the image column's check.")
    notes: list[str] = Field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 ready, 1 readable but not ready, 2 unreadable rows or no rows at all."""
        if self.error_count or self.rows == 0:
            return 2
        return 0 if self.ready else 1

    def best_method(self) -> str | None:
        """The requested method, or (auto) the first ready one, else the first that needs only a mapping."""
        if self.method != "auto":
            return self.method
        for wanted in ("ready", "needs_mapping"):
            for name, verdict in self.methods.items():
                if verdict.status == wanted:
                    return name
        return None
