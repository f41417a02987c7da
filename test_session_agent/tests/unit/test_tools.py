"""The tool registry (safe calculator, current time) and the scripted model's tool calls, without a backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from strands import Agent

from test_session_agent.models.factory import ProfileModels, build_profile_model
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.service.tools import TOOLS, calculator, current_time, resolve_tools, unknown_tools
from test_session_agent.settings import AgentSettings


@pytest.mark.parametrize(
    ("expression", "result"),
    [("(17 + 25) * 2 / 4", "21.0"), ("2 ** 10", "1024"), ("sqrt(16) + abs(-1)", "5.0"), ("7 // 2 % 3", "0")],
)
def test_calculator_computes(expression: str, result: str) -> None:
    assert calculator(expression) == result


@pytest.mark.parametrize(
    "expression",
    [
        '__import__("os").system("true")',
        "().__class__.__bases__",
        "open('/etc/passwd')",
        "9 ** 9 ** 9",
        "1 < 2",
        "'a' * 3",
        "x",
        "1 +",
        "1" * 501,
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(ValueError):
        calculator(expression)


def test_current_time() -> None:
    assert datetime.fromisoformat(current_time()).utcoffset() is not None
    assert current_time("Asia/Tokyo").endswith("+09:00")
    with pytest.raises(ValueError, match="unknown time zone"):
        current_time("Mars/Olympus")


def test_registry() -> None:
    assert set(TOOLS) == {"calculator", "current_time", "handoff"}
    assert [t.tool_name for t in resolve_tools(["current_time", "calculator"])] == ["current_time", "calculator"]
    assert unknown_tools(["calculator", "shell", "rm"]) == ["shell", "rm"]
    with pytest.raises(KeyError, match="shell"):
        resolve_tools(["shell"])


def test_scripted_model_calls_an_offered_tool_and_reports_its_result() -> None:
    tools: list[Any] = resolve_tools(["calculator"])
    agent = Agent(model=ScriptedModel(), tools=tools, callback_handler=None)
    assert str(agent('use calculator {"expression": "6 * 7"}')).strip() == "calculator returned: 42"
    roles = [(m["role"], next(iter(m["content"][0]))) for m in agent.messages]
    assert roles == [("user", "text"), ("assistant", "toolUse"), ("user", "toolResult"), ("assistant", "text")]
    # a tool that is not offered is not called
    assert "you said: use current_time" in str(agent("use current_time"))


def settings(**values: Any) -> AgentSettings:
    return AgentSettings.model_validate({"model_provider": "scripted"} | values)


def test_profile_models() -> None:
    default = ScriptedModel()
    models = ProfileModels(settings(), default)
    assert models.model_for({}) is default and models.model_for({"provider": "scripted"}) is default
    warm = models.model_for({"provider": "scripted", "temperature": 0.7})
    assert warm is not default and warm.get_config()["temperature"] == 0.7
    assert models.model_for({"temperature": 0.7, "provider": "scripted"}) is warm
    with pytest.raises(ValueError, match="unknown"):
        build_profile_model(settings(), {"provider": "skynet"})
