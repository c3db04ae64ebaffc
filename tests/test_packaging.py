"""Packaging: the deploy lock is current and is what the tests run on, and the `sourcemart` command
is the CLI with a version."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

LOCK = ROOT / "requirements.lock"


def pins(text: str) -> dict[str, tuple[str, int]]:
    """{name: (version, number of hashes)} of a pip-style hashed lock file."""
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", block)
        if m:
            found[canonicalize_name(m.group(1))] = (m.group(2), block.count("--hash=sha256:"))
    return found


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]


def test_the_lock_was_made_from_the_current_requirements():
    first = LOCK.read_text().splitlines()[0]
    noted = first.removeprefix("# requirements.txt sha256: ")
    current = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    assert noted == current, "requirements.txt changed since requirements.lock was made: run `make lock`"


def test_every_requirement_is_pinned_within_its_range_with_hashes():
    locked = pins(LOCK.read_text())
    assert len(locked) > 20
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(locked[name][0], prereleases=True), (req, locked[name])
    assert all(n_hashes >= 1 for _, n_hashes in locked.values())


def test_the_tests_run_on_the_locked_versions():
    """.venv is installed from the lock (Makefile), so what the tests saw is what a deploy installs."""
    mismatched = {}
    for name, (pinned, _) in pins(LOCK.read_text()).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            mismatched[name] = (pinned, installed)
    assert not mismatched, f"locked vs installed: {mismatched}"


def test_the_sourcemart_command_is_the_cli_with_a_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    command = Path(sys.executable).parent / "sourcemart"
    assert project["scripts"]["sourcemart"] == "local_runner.cli:console"
    out = subprocess.run([str(command), "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"sourcemart {project['version']}"
    module = subprocess.run([sys.executable, "-m", "local_runner", "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert module.stdout.strip() == f"python -m local_runner {project['version']}"
    checked = subprocess.run([str(command), "validate", "samples/acme/events.json"], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert checked.returncode == 0 and checked.stdout.strip() == "samples/acme/events.json: ok"
    bad = subprocess.run([str(command), "validate", "sourcemarts/acme.json"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert bad.returncode == 2  # a sourcemart file is not a processors config: same exit codes as the module
