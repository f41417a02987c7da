"""Text rules of long-term memory: facts from a conversation (no model call) and a long query reduced to its terms."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from strands.memory import ExtractionResult, ExtractorContext
from strands.types.content import Message

logger = logging.getLogger(__name__)

MAX_CONTENT_CHARS = 16_384  # the backend's longest memory (422 beyond)
MAX_QUERY_CHARS = 2_000  # the backend's longest query (422 beyond)
# A query over MAX_QUERY_CHARS is reduced to at most this many of its distinct words (the backend's full-text bound).
MAX_QUERY_TERMS = 32
MAX_TERM_CHARS = 64  # a longer "word" (a hash, a base64 blob) is no search term

_WORD = re.compile(r"\w+")


def query_terms(query: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    """A search query the backend accepts: `query` itself when short enough, else its terms.

    Args:
        query: the query, e.g. the user's whole prompt.
        max_chars: the longest query sent.

    Returns:
        `query` unchanged when it has at most `max_chars` characters; else its `MAX_QUERY_TERMS` longest distinct
        words (lowercased; at most `MAX_TERM_CHARS` each: longer words are rarer and carry the content), in their
        order of first appearance, separated by spaces, at most `max_chars` characters in all.
    """
    if len(query) <= max_chars:
        return query
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query) if len(w) <= MAX_TERM_CHARS))
    keep: set[str] = set()
    used = 0
    for word in sorted(words, key=len, reverse=True):
        if len(keep) == MAX_QUERY_TERMS:
            break
        if used + len(word) + 1 <= max_chars:
            keep.add(word)
            used += len(word) + 1
    return " ".join(w for w in words if w in keep)


# A sentence ends at . ! ? or a line break; it is a first-person statement when it starts with one of these.
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FIRST_PERSON = re.compile(r"^(?:I|I'm|I've|I'd|I'll|My|Mine)\b", re.IGNORECASE)
_QUESTION_START = re.compile(r"^(?:I wonder|I want to know)\b", re.IGNORECASE)


class FirstPersonExtractor:
    """A deterministic Strands `Extractor`: first-person statements of the user become facts.

    A sentence of a user message that starts with "I", "I'm", "I've", "I'd", "I'll", "My" or "Mine" and is not a
    question is one fact, stored verbatim (trailing punctuation removed). No model call: for the scripted model and
    for small local models whose `ModelExtractor` output is unreliable.

    Bounded: at most `max_facts` facts per extraction (Strands writes each with its own request), and a fact longer
    than a memory may be (`max_chars`) is skipped rather than failing the whole batch (which Strands would retry after
    every later turn with everything buffered since). `on_dropped(reason, count)` hears of both: `"turn_cap"`,
    `"too_long"`.

    Example:
        ```python
        ExtractionConfig(trigger=InvocationTrigger(), extractor=FirstPersonExtractor(max_facts=20))
        ```
    """

    def __init__(
        self,
        roles: Sequence[str] = ("user",),
        min_words: int = 3,
        *,
        max_facts: int | None = None,
        max_chars: int = MAX_CONTENT_CHARS,
        on_dropped: Callable[[str, int], None] | None = None,
    ) -> None:
        """Create the extractor.

        Args:
            roles: the roles whose messages are read.
            min_words: shorter sentences ("I see.") are not facts.
            max_facts: most facts one extraction returns (the first ones); None: no cap.
            max_chars: longest fact kept, in characters (the backend's memory limit).
            on_dropped: called with a reason and a count when facts are left out.
        """
        self.roles = frozenset(roles)
        self.min_words = min_words
        self.max_facts = max_facts
        self.max_chars = max_chars
        self.on_dropped = on_dropped

    async def extract(self, messages: list[Message], context: ExtractorContext | None = None) -> list[ExtractionResult]:
        """Extract the first-person statements of `messages`, in order, each once (`on_dropped` hears of the rest).

        Args:
            messages: the turn's messages (tool traffic already filtered out by the manager).
            context: unused (no model is called).

        Returns:
            One result per fact, with metadata `{"extractor": "first_person", "role": ...}`; at most `max_facts`.
        """
        results, dropped = self.facts(messages)
        for reason, count in dropped.items():
            logger.warning("reason=<%s>, count=<%d> | facts not extracted", reason, count)
            if self.on_dropped is not None:
                self.on_dropped(reason, count)
        return results

    def facts(self, messages: Sequence[Message]) -> tuple[list[ExtractionResult], dict[str, int]]:
        """`extract`'s work, synchronous and silent: the same messages always give the same facts.

        Args:
            messages: the messages to read (blocks other than text are ignored).

        Returns:
            The facts as `extract` returns them, and the facts left out by reason (`"too_long"`, `"turn_cap"`; a
            reason with none left out is absent).
        """
        facts: dict[str, str] = {}
        too_long = 0
        for message in messages:
            if message["role"] not in self.roles:
                continue
            for block in message["content"]:
                for sentence in _SENTENCE.findall(block.get("text", "")):
                    fact = sentence.strip()
                    if fact.endswith("?") or not _FIRST_PERSON.match(fact) or _QUESTION_START.match(fact):
                        continue
                    fact = fact.rstrip(".!").strip()
                    if len(fact.split()) < self.min_words:
                        continue
                    if len(fact) > self.max_chars:
                        too_long += 1
                        continue
                    facts.setdefault(fact, message["role"])
        kept = list(facts.items())
        over = 0 if self.max_facts is None else max(0, len(kept) - self.max_facts)
        if over:
            kept = kept[: self.max_facts]
        dropped = {reason: count for reason, count in (("too_long", too_long), ("turn_cap", over)) if count}
        results = [ExtractionResult(content=f, metadata={"extractor": "first_person", "role": r}) for f, r in kept]
        return results, dropped
