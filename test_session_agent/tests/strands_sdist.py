"""Strands' own test suites, from the strands-agents sdist of the installed version (the wheel ships no tests).

The sdist is downloaded once with pip (registry access needed the first time) into `.data/strands-sdist/` at the
repository root and extracted there; later runs reuse it.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


def _data_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").exists():
            return parent / ".data" / "strands-sdist"
    return Path.cwd() / ".data" / "strands-sdist"


def _download_commands(version: str, dest: Path) -> list[list[str]]:
    args = ["download", "--no-deps", "--no-binary", ":all:", f"strands-agents=={version}", "-d", str(dest)]
    commands = [[sys.executable, "-m", "pip", *args]]  # a venv made by uv usually has no pip: then a tool's pip
    if uv := shutil.which("uv"):
        commands.append([uv, "tool", "run", "--from", "pip", "pip", *args])
    if pip := shutil.which("pip3") or shutil.which("pip"):
        commands.append([pip, *args])
    return commands


def strands_sdist() -> Path:
    """Return the extracted sdist directory of the installed strands-agents (downloading it on first use).

    Raises:
        RuntimeError: the sdist could not be downloaded by any pip available.
    """
    version = importlib.metadata.version("strands-agents")
    dest = _data_dir()
    root = dest / f"strands_agents-{version}"
    if (root / "tests").is_dir():
        return root
    archive = dest / f"strands_agents-{version}.tar.gz"
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    if not archive.exists():
        for command in _download_commands(version, dest):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode == 0 and archive.exists():
                break
            errors.append(f"{command[0]}: {done.stderr.strip()[-300:]}")
        else:
            raise RuntimeError(f"could not download strands-agents=={version} sdist: {errors}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return root
