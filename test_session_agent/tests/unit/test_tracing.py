"""`RecordingAwareTracer`: Strands' span events of messages only for spans that record them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext
from strands import Agent
from strands.telemetry import tracer as strands_tracer

from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.tracing import RecordingAwareTracer, use_recording_aware_tracer

MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}, {"role": "assistant", "content": [{"text": "hi"}]}]


@pytest.fixture()
def global_tracer() -> Iterator[None]:
    saved = strands_tracer._tracer_instance
    yield
    strands_tracer._tracer_instance = saved


def test_it_becomes_strands_tracer_once(global_tracer: None) -> None:
    assert use_recording_aware_tracer()
    installed = strands_tracer.get_tracer()
    assert isinstance(installed, RecordingAwareTracer)
    assert use_recording_aware_tracer()
    assert strands_tracer.get_tracer() is installed


def test_a_non_recording_span_gets_no_serialised_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    serialised: list[object] = []

    def serialize(obj: object) -> str:
        serialised.append(obj)
        return "[]"

    monkeypatch.setattr(strands_tracer, "serialize", serialize)
    span = NonRecordingSpan(SpanContext(trace_id=1, span_id=1, is_remote=False))
    RecordingAwareTracer()._add_event_messages(span, MESSAGES)  # type: ignore[arg-type]
    assert serialised == []
    strands_tracer.Tracer()._add_event_messages(span, MESSAGES)  # type: ignore[arg-type]
    assert serialised, "Strands' own tracer serialises them (the work this tracer saves)"


def test_a_recording_span_gets_what_strands_gives_it(global_tracer: None) -> None:
    """An agent's turn traced by an OpenTelemetry SDK: the same span events with either tracer."""

    def traced_events(tracer: strands_tracer.Tracer) -> list[tuple[str, list[str]]]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer.tracer_provider = provider
        tracer.tracer = provider.get_tracer(tracer.service_name)
        strands_tracer._tracer_instance = tracer  # type: ignore[assignment]  # Strands types it None
        Agent(model=ScriptedModel(), callback_handler=None)("hello")
        return sorted((span.name, [str(e.attributes) for e in span.events]) for span in exporter.get_finished_spans())

    ours = traced_events(RecordingAwareTracer())
    theirs = traced_events(strands_tracer.Tracer())
    assert ours == theirs
    assert any("hello" in event for _, events in ours for event in events)
