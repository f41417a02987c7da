"""Bundled example agent profiles (`POST /api/v1/agents/examples/{example}` stores a copy of one)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

EXAMPLES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "customer_support": {
            "name": "Customer support",
            "system_prompt": (
                "You are a friendly customer support agent for an online store. Answer in one or two short "
                "sentences, ask for an order number when you need one, and never invent order details. Use the "
                "calculator for any arithmetic (totals, refunds, discounts) and current_time for dates."
            ),
            "model_config": {"temperature": 0.2},
            "tools": ["calculator", "current_time"],
        },
        "math_tutor": {
            "name": "Math tutor",
            "system_prompt": (
                "You are a patient math tutor. Explain each step briefly and check every computation with the "
                "calculator before giving the result."
            ),
            "model_config": {},
            "tools": ["calculator"],
        },
    }
)
"""Example profiles by name, in the body shape of `POST /api/v1/agents`."""
