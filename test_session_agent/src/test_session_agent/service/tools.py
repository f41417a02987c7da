"""Built-in tools an agent profile may name: a registry of name → Strands tool, each safe to run in the service.

A profile lists tool names (`tools: ["calculator"]`); `resolve_tools` turns them into the Strands tools its agent
gets. Adding a tool is adding it to `TOOLS`; profiles naming anything else are refused (422) before they are stored.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simpleeval import DEFAULT_OPERATORS, InvalidExpression, SimpleEval
from strands import tool
from strands.types.tools import AgentTool

from .handoff import handoff

MAX_EXPRESSION_CHARS = 500

_MATH_FUNCTIONS: dict[str, Any] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_MATH_NAMES: dict[str, Any] = {"pi": math.pi, "e": math.e}
# Arithmetic only: no comparisons, membership or bit operators (nothing an agent needs to compute an answer).
_ARITHMETIC = {
    node: DEFAULT_OPERATORS[node]
    for node in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)
}


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Supports + - * / // % ** and parentheses, the constants pi and e, and abs, round, min, max, sqrt, exp, log,
    log10, sin, cos, tan, floor, ceil. Example: "(17 + 25) * 2 / 3".

    Args:
        expression: the arithmetic expression to evaluate.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    # simpleeval walks the parsed AST with an allow-list (no names, attributes or calls beyond those given) and
    # bounds powers and string sizes: no code of the expression ever runs.
    evaluator = SimpleEval(operators=_ARITHMETIC, functions=_MATH_FUNCTIONS, names=_MATH_NAMES)
    try:
        result = evaluator.eval(expression)
    except (InvalidExpression, SyntaxError, KeyError, ArithmeticError, TypeError, ValueError) as e:
        # KeyError: an operator left out of `_ARITHMETIC` (comparisons, bit operators).
        raise ValueError(f"cannot evaluate {expression!r}: {e}") from e
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise ValueError("the expression does not evaluate to a number")
    return str(result)


@tool
def current_time(timezone: str = "UTC") -> str:
    """Return the current date and time (ISO 8601) in a time zone.

    Args:
        timezone: an IANA time zone name such as "Europe/Paris" or "America/Los_Angeles"; default UTC.
    """
    try:
        zone = UTC if timezone.upper() == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {timezone!r}") from e
    return datetime.now(zone).isoformat(timespec="seconds")


TOOLS: Mapping[str, AgentTool] = MappingProxyType({t.tool_name: t for t in (calculator, current_time, handoff)})
"""Every tool a profile may name, by name."""


def unknown_tools(names: Iterable[str]) -> list[str]:
    """The names in `names` that are not tools of the registry, in order."""
    return [name for name in names if name not in TOOLS]


def resolve_tools(names: Iterable[str]) -> list[AgentTool]:
    """The Strands tools of `names`, in order.

    Raises:
        KeyError: a name is not a tool of the registry.
    """
    wanted = list(names)
    missing = unknown_tools(wanted)
    if missing:
        raise KeyError(f"unknown tools {missing}; known: {sorted(TOOLS)}")
    return [TOOLS[name] for name in wanted]
