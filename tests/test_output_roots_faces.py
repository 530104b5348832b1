"""Where a job may write is decided once (paths.allowed_roots) and holds from every face: CLI, MCP, API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory, text_of


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Only the defaults are allowed (the start directory and $TUNEFORGE_HOME); a data file and a path outside both."""
    monkeypatch.delenv("TUNEFORGE_ALLOWED_ROOTS", raising=False)
    start = tmp_path / "project"
    start.mkdir()
    monkeypatch.chdir(start)
    data = start / "chats.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    return data, tmp_path / "somewhere-else" / "out"


def test_the_cli_refuses_an_output_outside_the_allowed_roots(capsys, outside, tiny_llama_dir):
    data, out = outside
    result = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--dataset", str(data), "--output", str(out), "--json")
    assert result.returncode != 0
    err = json.loads(result.stdout or result.stderr)
    assert err["code"] == "config.invalid" and "TUNEFORGE_ALLOWED_ROOTS" in err["error"]
    assert not out.exists()


def test_the_mcp_server_refuses_an_output_outside_the_allowed_roots(outside, tiny_llama_dir):
    data, out = outside

    async def body(client):
        return await client.call_tool("submit_training", {
            "model": str(tiny_llama_dir), "dataset": str(data), "config": {"output_dir": str(out)}})

    result = in_memory(body)
    text = text_of(result)
    assert result.is_error and ("[config.invalid]" in text or "[tool.invalid_arguments]" in text)
    assert "output_dir" in text and "TUNEFORGE_ALLOWED_ROOTS" in text
    assert not out.exists()


def test_the_api_refuses_an_output_outside_the_allowed_roots(outside, tiny_llama_dir):
    from tuneforge import api
    from tuneforge.errors import ConfigError

    data, out = outside
    with pytest.raises(ConfigError) as err:
        api.train(model=str(tiny_llama_dir), dataset=str(data), output_dir=str(out))
    assert err.value.code == "config.invalid"
