"""Strands' own test suites, from the strands-agents sdist of the installed version (the wheel ships no tests).

The sdist is downloaded once with pip (registry access needed the first time) into `.data/strands-sdist/` at the
repository root and extracted there; later runs reuse it. `run_suite` runs some of its test files in a pytest
subprocess with `_strands_contract_plugin` (which swaps Strands' class under test for ours); `check` holds the
outcome to "every test passes but those listed not applicable, each with its reason".
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
    dest.mkdir(parents=True, exist_ok=True)
    # Test processes running side by side (pytest-xdist) fetch it once: the others wait on the lock, then reuse it.
    with (dest / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "tests").is_dir():
            _fetch(version, dest)
    return root


def _fetch(version: str, dest: Path) -> None:
    archive = dest / f"strands_agents-{version}.tar.gz"
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


def run_suite(files: list[str], swap: str, backend_url: str, junit: Path) -> dict[str, str]:
    """Run Strands test files with the plugin; return {test id: outcome} (passed, failed, skipped).

    A test id is junit's class path + name, e.g. `tests.strands.session.test_x.TestClass.test_name`.
    """
    root = strands_sdist()
    env = os.environ | {
        "STRANDS_CONTRACT_BACKEND_URL": backend_url,
        "STRANDS_CONTRACT_SWAP": swap,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(root)]),
    }
    command = [
        sys.executable, "-m", "pytest", *files, "-p", "_strands_contract_plugin", "-p", "no:cacheprovider",
        "-o", "addopts=", "-q", "--junitxml", str(junit), "--rootdir", str(root), "-c", str(root / "pyproject.toml"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)
    if not junit.exists():
        raise AssertionError(f"the suite did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[test_id] = "failed"
        elif case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    print(f"{swap}: {len(outcomes)} ran, {sum(v == 'passed' for v in outcomes.values())} passed\n{done.stdout[-600:]}")
    return outcomes


def check(outcomes: dict[str, str], not_applicable: dict[str, str]) -> None:
    """Every test passed except those in `not_applicable` (test id -> reason); print the counts with the reasons."""
    passed = sum(o == "passed" for o in outcomes.values())
    listed = {t: r for t, r in not_applicable.items() if t in outcomes}
    print(f"passed {passed} of {len(outcomes)}, not applicable {len(listed)}:")
    for test_id, reason in sorted(listed.items()):
        print(f"  {test_id} [{outcomes[test_id]}]: {reason}")
    failed = sorted(t for t, o in outcomes.items() if o == "failed" and t not in not_applicable)
    assert not failed, f"Strands tests failing on our implementation: {failed}"
    passing = sorted(t for t in listed if outcomes[t] == "passed")
    assert not passing, f"listed not applicable but passing (remove them from the list): {passing}"
    assert passed > 0
