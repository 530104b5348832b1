"""Reading a config file (YAML or JSON) and turning schema errors into one ConfigError naming each key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict, with errors that name the file and line."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {str(p)!r} does not exist.", "Check the path passed to --config.", code="config.file_not_found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {p} is not UTF-8 text (byte {exc.start}).", "Save it as UTF-8 YAML or JSON.", code="config.not_utf8") from None
    try:
        data = yaml.safe_load(text) if p.suffix.lower() not in (".json",) else json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}.", "Fix the JSON syntax at that position.", code="config.bad_json") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}.", "Fix the YAML syntax at that position.", code="config.bad_yaml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of settings, not {type(data).__name__}.", "See `tuneforge train --help` for the keys.", code="config.not_a_mapping")
    return data


def config_error(exc: ValidationError, source: str) -> ConfigError:
    """Turn pydantic's errors into one message naming each bad key and why."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        else:
            lines.append(f"{loc}: {err['msg']}")
    return ConfigError(
        f"Invalid training config ({source}): " + "; ".join(lines),
        "Fix or remove the keys named; `tuneforge train --help` lists the options.",
        code="config.invalid",
        details={"errors": lines},
    )
