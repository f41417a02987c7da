"""`LocalModelQueue`: one turn in the local model's slot, at most `size` waiting, the rest refused at once."""

from __future__ import annotations

import contextlib

import pytest

from test_session_agent.exceptions import ModelBusyError
from test_session_agent.models.local import LocalModelQueue, local_model_queue


def test_queue_admits_the_slot_and_size_waiting_then_refuses() -> None:
    queue = LocalModelQueue(1)
    with contextlib.ExitStack() as held:
        held.enter_context(queue.admit())  # generating
        held.enter_context(queue.admit())  # waiting
        with pytest.raises(ModelBusyError), queue.admit():
            pass
    with queue.admit():  # places are given back, also after a refusal
        pass


def test_queue_of_size_zero_admits_one_turn_and_unbounded_admits_all() -> None:
    queue = LocalModelQueue(0)
    with queue.admit(), pytest.raises(ModelBusyError), queue.admit():
        pass
    unbounded = LocalModelQueue(None)
    with contextlib.ExitStack() as held:
        for _ in range(100):
            held.enter_context(unbounded.admit())


def test_models_built_by_the_factory_share_the_process_queue() -> None:
    assert local_model_queue(3) is local_model_queue(3)
