"""Strands' OpenTelemetry tracer, without the message serialisation of spans nobody records.

Strands' `Tracer` adds every message of the conversation to the agent, event-loop-cycle and model-invoke spans as
span events: for each message it `json.dumps` the content, then hands it to the span. Without an OpenTelemetry SDK
configured (the default), the spans are non-recording and drop those events, but the serialisation has already
run: with a 40-message window, about 0.2 ms per span and 0.4 to 1 ms per turn, all of it before the model is
called, so on the way to the first streamed token (`python -m bench --only streaming`). `RecordingAwareTracer`
adds the message events only to spans that record them; a configured SDK gets exactly what Strands gives it.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.trace import Span
from strands.telemetry import tracer as strands_tracer
from strands.types.content import Messages

logger = logging.getLogger(__name__)


class RecordingAwareTracer(strands_tracer.Tracer):
    """Strands' `Tracer`; the messages' span events are built only for a span that records (`span.is_recording()`)."""

    def _add_event_messages(self, span: Span, messages: Messages) -> None:
        """Strands' own, for a recording span; nothing for a non-recording one (it would drop the events)."""
        if span is not None and span.is_recording():
            super()._add_event_messages(span, messages)


def use_recording_aware_tracer() -> bool:
    """Make `RecordingAwareTracer` the tracer Strands' event loop and new agents use (`strands.telemetry.get_tracer`).

    Idempotent. Agents built before keep the tracer they hold for their own agent span; their cycles and model calls
    use the new one (the event loop asks `get_tracer()` each cycle).

    Returns:
        Whether it is installed: False when this Strands version has no `_tracer_instance` or `_add_event_messages`
        to replace (then Strands' tracer stays, unchanged).
    """
    if not hasattr(strands_tracer, "_tracer_instance") or not hasattr(strands_tracer.Tracer, "_add_event_messages"):
        logger.info("strands' tracer has changed shape: its message events stay as they are")
        return False
    current: Any = strands_tracer._tracer_instance
    if not isinstance(current, RecordingAwareTracer):
        strands_tracer._tracer_instance = RecordingAwareTracer()  # type: ignore[assignment]  # typed None upstream
    return True
