"""The training config (a leaf package): the schema every template reads, file reading, durations.

`overrides` merges a config file with flags or tool arguments (one merge for the CLI and MCP).
"""

from __future__ import annotations

from ..types import METHODS, Method
from .durations import format_duration, parse_duration
from .files import config_error, load_mapping
from .schema import (
    DatasetSpec,
    LaunchSpec,
    MethodSpec,
    PeftSpec,
    RunConfig,
    Strict,
    TrackioSpec,
    TrainSpec,
    check_model_ref,
    check_name,
    is_repo_id,
)

__all__ = [
    "METHODS", "Method", "RunConfig", "DatasetSpec", "PeftSpec", "TrainSpec", "MethodSpec", "TrackioSpec",
    "LaunchSpec", "Strict", "check_model_ref", "check_name", "is_repo_id", "load_mapping", "config_error",
    "parse_duration", "format_duration",
]
