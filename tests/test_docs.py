"""The documentation site: every page the project promises is in mkdocs.yml's nav and on disk,
the generated CLI reference covers every command, the API reference names modules that exist,
and the reference material that left the README is on its docs page. `mkdocs build --strict`
itself runs in CI (.ci/run), not here: it takes longer than a unit test should."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_readme import cli_commands

DOCS = REPO / "docs"
MKDOCS = yaml.safe_load((REPO / "mkdocs.yml").read_text())

# The pages the project promises (issue 18), by file.
PROMISED = [
    "index.md",
    "getting-started.md",
    "concepts.md",
    "methods/reference.md",
    "methods/sd-text.md",
    "methods/audiotoken.md",
    "methods/imagebind-unclip.md",
    "methods/wav2clip-vqgan.md",
    "metrics.md",
    "datasets.md",
    "reproducing-table1.md",
    "plugins/method.md",
    "plugins/metric.md",
    "human-evaluation.md",
    "reliability.md",
    "distributed.md",
    "benchmarks.md",
    "reference/cli.md",
    "reference/api/index.md",
]


def nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    return []


def test_promised_pages_are_in_the_nav_and_on_disk():
    pages = nav_pages(MKDOCS["nav"])
    for page in PROMISED:
        assert page in pages, f"{page} is not in mkdocs.yml's nav"
    for page in pages:
        assert (DOCS / page).is_file(), f"mkdocs.yml's nav names {page}, which does not exist"


def test_the_site_uses_material_and_the_generating_hook():
    assert MKDOCS["theme"]["name"] == "material"
    assert MKDOCS["hooks"] == ["docs/hooks/generate.py"]
    assert "site/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def hook():
    pytest.importorskip("mkdocs")
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        import generate
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    return generate


def test_cli_reference_documents_every_command(hook):
    page = hook.cli_reference()
    for usage in cli_commands():
        assert f"`{usage}`" in page, usage
    run = page.split("## `audiobench run`")[1].split("\n## ")[0]
    assert "| `--method TEXT` |" in run and "```text\naudiobench run [OPTIONS]\n```" in run
    # nested groups reach their leaves, with options
    assert "#### `audiobench data prepare vggsound`" in page
    assert "`--video-dir PATH`" in page


def test_hook_reads_the_package_dir_table(hook):
    """The hook lays the API sources out as installed, from pyproject.toml's package-dir."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    pyproject = (REPO / "pyproject.toml").read_text()
    expected = tomllib.loads(pyproject)["tool"]["setuptools"]["package-dir"]
    assert hook.package_dir_table(pyproject) == expected
    assert expected["audiobench.methods"] == "methods"


def source_of(module: str, hook) -> Path | None:
    """The source file of an installed module name, through the package-dir mapping."""
    package_dir = hook.package_dir_table((REPO / "pyproject.toml").read_text())
    roots = {name: REPO / folder for name, folder in package_dir.items()}
    for name in sorted(roots, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            rest = module[len(name) :].lstrip(".").split(".") if module != name else []
            base = roots[name].joinpath(*rest) if rest else roots[name]
            for candidate in (base / "__init__.py", base.with_suffix(".py")):
                if candidate.is_file():
                    return candidate
    return None


def test_api_reference_names_existing_modules(hook):
    identifiers = []
    for page in (DOCS / "reference" / "api").glob("*.md"):
        identifiers += re.findall(r"^::: ([\w.]+)$", page.read_text(), flags=re.MULTILINE)
    assert "audiobench.methods.audiotoken" in identifiers
    assert "audiobench.human_eval.export" in identifiers
    for identifier in identifiers:
        assert source_of(identifier, hook) is not None, f"{identifier} has no source file"


# Reference material that moved out of the README, and the page that now holds it.
MOVED = {
    "methods/imagebind-unclip.md": ["204 frames", "-4.268", "9.138", "htk_compat"],
    "methods/audiotoken.md": ["8,853,507", "X-vector", "5e-5", "steps=50", "checkpoint_every"],
    "methods/wav2clip-vqgan.md": ["cutouts.py", "load_taming_vqgan", "spherical distance"],
    "metrics.md": ["ties counting 1/2", "0.75", "54.66", "76.66", "feature_caches", "--pool-size"],
    "runs.md": ["schema version 1", "Schema version 2", "samples.parquet", "flock"],
    "reliability.md": ["SIGKILL", "O_NOFOLLOW", "weights_only=True", "test_bad_inputs.py"],
    "weights.md": ["paper-random", "models manifest", "CHECKPOINT_GLOBALS", "859,520,964"],
    "datasets.md": ["skipped.csv", "prepare.jsonl", "--frame-select", "train_crops.parquet"],
    "human-evaluation.md": ["Krippendorff", "Holm", "labelstudio", "4.07"],
    "distributed.md": ["samples.part-r.parquet", "gloo", "--num_machines"],
    "benchmarks.md": ["python -m audiobench.benchmarks", "benchmarks/RESULTS.md"],
    "reports.md": ["booktabs", "--leaderboard", "leaderboard add", "--force"],
    "getting-started.md": ["11 minutes", "25 minutes", "-m kill", "-m paper_smoke -s", "chromium"],
}


@pytest.mark.parametrize("page", sorted(MOVED))
def test_reference_material_is_on_its_page(page):
    text = (DOCS / page).read_text()
    for fact in MOVED[page]:
        assert fact in text, f"{page} lost {fact!r}"


def test_docs_describe_the_current_train_and_benchmark_commands():
    """`train` takes the method's options through --set; benchmarks run as audiobench.benchmarks."""
    pages = [REPO / "README.md", *DOCS.rglob("*.md")]
    gone = ("--steps", "--batch-size", "--lr", "--grad-accum", "--checkpoint-every")
    for path in pages:
        for line in path.read_text().splitlines():
            if "audiobench train" in line:
                assert not any(flag in line for flag in gone), f"{path.name}: {line}"
            assert not re.search(r"python -m benchmarks\b", line), f"{path.name}: {line}"
