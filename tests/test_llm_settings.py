"""The llm settings section: provider method choice, the API key kept secret, clear errors before any run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from infra.redact import redact_url
from infra.settings import load_settings, redacted_config
from tests.llm_helpers import prompt_data, valid_answer
from tests.openai_stub import OpenAIStub, Reply
from tools.llm_config import LLMSettings
from tradegraph.cli import main


def test_structured_output_method_follows_the_provider() -> None:
    assert LLMSettings().structured_method() == "json_schema"
    assert LLMSettings(base_url="http://127.0.0.1:11434/v1").structured_method() == "function_calling"
    assert LLMSettings(structured_output="json_mode").structured_method() == "json_mode"
    with pytest.raises(ValueError, match="is not an http"):
        LLMSettings(base_url="127.0.0.1:8000")


def test_the_api_key_never_reaches_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    secret = "sk-test-5ecr3t"
    monkeypatch.setenv("TRADEGRAPH_LLM__API_KEY", secret)
    settings = load_settings(llm={"budget": {"max_tokens_per_run": 123}})
    assert secret not in repr(settings) and settings.llm.api_key is not None
    config = redacted_config(settings)
    assert config["llm"]["api_key"] == "***" and config["llm"]["budget"]["max_tokens_per_run"] == 123
    assert config["llm"]["budget"]["max_output_tokens"] == 400  # 'tokens' is not a secret word
    assert redact_url("https://x.example/v1?api-key=abc&v=2") == "https://x.example/v1?api-key=***&v=2"
    with OpenAIStub() as stub:
        stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "HOLD")))
        monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", stub.base_url)
        journal = tmp_path / "j.sqlite"
        assert main(["run", "--reasoner", "llm", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                     "2024-01-01", "--journal", str(journal), "--no-progress"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert secret not in out + err
    db = sqlite3.connect(journal)
    dump = "\n".join(str(row) for table in ("runs", "decisions") for row in db.execute(f"SELECT * FROM {table}"))
    assert (
        secret not in dump
        and json.loads(db.execute("SELECT config FROM runs").fetchone()[0])["llm"]["api_key"] == "***"
    )


def test_openai_without_a_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TRADEGRAPH_LLM__API_KEY", raising=False)
    journal = tmp_path / "j.sqlite"
    code = main(["run", "--reasoner", "llm", "--journal", str(journal), "--no-progress"])
    err = capsys.readouterr().err
    assert (
        code == 2 and "https://api.openai.com/v1 needs an API key: set TRADEGRAPH_LLM__API_KEY or OPENAI_API_KEY" in err
    )
    assert not journal.exists()
    monkeypatch.setenv("TRADEGRAPH_LLM__PROMPT", "nope.v9")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    code = main(["run", "--reasoner", "llm", "--journal", str(journal), "--no-progress"])
    assert (
        code == 2
        and "no prompt template 'nope.v9' (available: chat_inspector.v1, crew.v1, trade_intent.v1)"
        in capsys.readouterr().err
    )
