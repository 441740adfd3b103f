"""The installed package: one import namespace, its data inside, no import cycle (issue 18).

The wheel is built from a copy of the sources with `python -m build`, installed into a fresh
virtual environment outside the repository, and the README's quickstart and `leaderboard render`
run from another working directory, so nothing can lean on the repository's layout or cwd.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from audiobench import leaderboard
from tests.conftest import REPO

# Repository folder -> the import name it installs as
NAMESPACE = {
    "audiobench": "audiobench",
    "methods": "audiobench.methods",
    "human_eval": "audiobench.human_eval",
    "benchmarks": "audiobench.benchmarks",
    "leaderboards": "audiobench.leaderboards",
}
PACKAGE_DATA = (
    "audiobench/py.typed",
    "audiobench/paper_table1.json",
    "audiobench/schemas/leaderboard.schema.json",
    "audiobench/leaderboards/vggsound.json",
    "audiobench/human_eval/templates/form.html.j2",
)


# --- no import cycle --------------------------------------------------------------------------


def module_files() -> dict[str, Path]:
    """Import name -> source file of every module the package installs."""
    modules = {}
    for folder, package in NAMESPACE.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            modules[".".join([package, *(p for p in parts if p != "__init__")])] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports anywhere: at the top, under TYPE_CHECKING or
    inside a function (a cycle through a lazy import is still a cycle of design)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in graph[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    return found


def test_nothing_imports_a_folder_by_its_repository_name():
    """`methods.x` from the repository root would be a second copy of `audiobench.methods.x`
    (its plugins registered twice); installed, the name does not exist."""
    bare = {folder for folder in NAMESPACE if folder != "audiobench"}
    offenders = []
    for path in [*REPO.glob("tests/*.py"), *module_files().values()]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in bare]
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    modules = module_files()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert "audiobench.registry" in graph["audiobench.trainer"]  # the walk sees imports
    assert cycles(graph) == []


# --- the packaged leaderboard -----------------------------------------------------------------


def test_render_reads_the_packaged_board_and_prints_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("leaderboard", "render")
    assert code == 0, err
    board = leaderboard.load(REPO / "leaderboards" / "vggsound.json")
    assert out == leaderboard.render(board)
    assert list(tmp_path.iterdir()) == []  # printed, nothing written


def test_add_names_the_board_it_writes(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("leaderboard", "add", str(tmp_path / "run"))
    assert code == 2 and "--file" in err


# --- the wheel --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build` makes from a copy of the sources (the build writes into the
    tree it builds, which must not be the repository under test)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in NAMESPACE:
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)]
    finished = subprocess.run(command, cwd=source, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    [built] = out.glob("audiobench-*.whl")
    return built


def test_the_wheel_installs_only_audiobench(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"audiobench"}
    for path in PACKAGE_DATA:
        assert path in names, path
    for folder, package in NAMESPACE.items():
        assert f"{package.replace('.', '/')}/__init__.py" in names, folder
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    targets = re.findall(r"= *([\w.]+):", text)
    assert targets and all(target.startswith("audiobench.") for target in targets), targets


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the repository with the wheel installed; the dependencies come from
    this environment's site-packages through a .pth line (no index is reachable offline), which
    adds their folder to the path without running the editable install's own .pth hooks."""
    venv = tmp_path_factory.mktemp("elsewhere") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    command = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)]
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return venv


def quickstart_steps() -> list[str]:
    """The README's quickstart after its install step: the commands a user runs."""
    section = (REPO / "README.md").read_text().split("## Quickstart")[1]
    first = re.findall(r"```bash\n(.+?)\n```", section)[0]
    steps = first.split(" && ")
    install = next(i for i, step in enumerate(steps) if "pip install" in step)
    return steps[install + 1 :]


def test_quickstart_and_render_run_from_another_directory(installed, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import audiobench; print(audiobench.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(installed), where
    for step in quickstart_steps():
        command = step.replace(".venv/bin/", f"{installed}/bin/")
        finished = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True)
        assert finished.returncode == 0, (command, finished.stderr[-3000:])
    metrics = json.loads((work / "runs" / "sd-text-test-tiny-seed0" / "metrics.json").read_text())
    assert {"ais", "iis", "aic", "fid"} <= set(metrics["metrics"])
    render = [str(installed / "bin" / "audiobench"), "leaderboard", "render"]
    finished = subprocess.run(render, cwd=work, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout == leaderboard.render(
        leaderboard.load(REPO / "leaderboards" / "vggsound.json")
    )
