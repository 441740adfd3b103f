"""Security properties: no unpickling of user files, no path escape through ids, escaped HTML.

Checkpoints, dataset indexes, run directories and labels all come from files a user may have
downloaded from anyone. Loading them must never run code (pickle), never read or write outside
the dataset or run directory (an id like `../../x`), and never inject markup into the pages
audiobench writes (a label like `<script>`).
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from audiobench.human_eval.export import Item, build_items, export
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from audiobench.data.index import INDEX_FILE, load_index, write_index
from audiobench.data.vggsound import PrepareSettings, prepare_vggsound
from audiobench.errors import AudiobenchError
from audiobench.report import Row, html_report
from audiobench.store import RunDirectory, atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("audiobench", "methods", "human_eval")
TORCH_LOADS = {"torch.load", "torch.serialization.load"}
# Modules whose purpose is unpickling; `pickle` itself may only be used for its exception type.
UNPICKLERS = {"_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}
PICKLE_ALLOWED = {"UnpicklingError"}


# --- (a) no unpickling of user files ---------------------------------------------------------


class UnsafeLoads(ast.NodeVisitor):
    """Finds what can unpickle: torch.load without weights_only=True (through any alias),
    pickle functions, unpickling modules, pandas.read_pickle and np.load(allow_pickle=True)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> dotted name it stands for
        self.problems: list[tuple[int, str]] = []
        self.torch_loads = 0

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:  # import a.b as c: c is a.b
                self.aliases[alias.asname] = alias.name
            else:  # import a.b: binds a
                self.aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            self._check_module(node, module)
            if module == "pickle" and alias.name not in PICKLE_ALLOWED:
                self.problems.append((node.lineno, f"from pickle import {alias.name}"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self.dotted(node.value) == "pickle" and node.attr not in PICKLE_ALLOWED:
            self.problems.append((node.lineno, f"pickle.{node.attr}"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        if name in TORCH_LOADS:
            self.torch_loads += 1
            if not _is_true(keywords.get("weights_only")) or None in keywords:
                self.problems.append((node.lineno, f"{name}(...) without weights_only=True"))
        if name and name.endswith("read_pickle"):
            self.problems.append((node.lineno, f"{name}(...)"))
        if name in {"numpy.load", "np.load"} and not _is_false_or_absent(keywords, "allow_pickle"):
            self.problems.append((node.lineno, "numpy.load(..., allow_pickle=...)"))
        self.generic_visit(node)

    def dotted(self, node: ast.expr) -> str | None:
        """`a.b.c` with `a` replaced by what it was imported as, or None if not a name chain."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _check_module(self, node: ast.stmt, module: str) -> None:
        if module.split(".")[0] in UNPICKLERS:
            self.problems.append((node.lineno, f"imports {module}"))


def _is_true(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Constant) and value.value is True


def _is_false_or_absent(keywords: dict, name: str) -> bool:
    value = keywords.get(name)
    return value is None or (isinstance(value, ast.Constant) and value.value is False)


def scan(source: str) -> UnsafeLoads:
    visitor = UnsafeLoads()
    visitor.visit(ast.parse(source))
    return visitor


def test_no_module_can_unpickle_a_user_file():
    problems, torch_loads = [], 0
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            visitor = scan(path.read_text(encoding="utf-8"))
            torch_loads += visitor.torch_loads
            problems += [
                f"{path.relative_to(REPO)}:{line}: {what}" for line, what in visitor.problems
            ]
    assert problems == []
    # every file goes through audiobench.models.checkpoints' one torch.load
    assert torch_loads >= 1, "the scan found no torch.load at all: is it still looking?"


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import torch\ntorch.load(path, weights_only=flag)",
        "import torch\ntorch.load(path, **options)",
        "import torch as t\nt.load(path)",
        "from torch import load\nload(path)",
        "from torch import load as read\nread(path)",
        "import torch.serialization\ntorch.serialization.load(path)",
        "import pickle\npickle.load(handle)",
        "import pickle\npickle.loads(data)",
        "import pickle as p\np.Unpickler(handle).load()",
        "from pickle import loads",
        "import dill",
        "import cloudpickle",
        "import joblib",
        "import pandas as pd\npd.read_pickle(path)",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
    ],
)
def test_the_scan_flags_each_way_of_unpickling(source):
    assert scan(source).problems, source


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
        "import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass",
        "import numpy as np\nnp.load(path, allow_pickle=False)",
        "import json\njson.load(handle)",
    ],
)
def test_the_scan_passes_safe_code(source):
    assert scan(source).problems == []


# --- (b) ids and index paths cannot leave the dataset or run directory ----------------------

ESCAPING_IDS = ["../x", "../../etc/passwd", "/abs/path", "a/b", "a\\b", "..", ".", ".hidden", ""]


def write_dataset(folder: Path, sample_id: str = "s1", audio: str = "audio/s1.wav") -> Path:
    """An index naming files that need not exist: load_index checks ids and paths first."""
    write_index(
        folder,
        [
            {
                "id": sample_id,
                "label": "dog",
                "split": "test",
                "audio": audio,
                "audio_start": 0.0,
                "audio_end": 5.0,
                "frame": "frames/s1.png",
            }
        ],
    )
    return folder / INDEX_FILE


@pytest.mark.parametrize("sample_id", ESCAPING_IDS)
def test_index_ids_that_are_not_file_names_are_refused_at_load(tmp_path, sample_id):
    index = write_dataset(tmp_path / "data", sample_id=sample_id)
    with pytest.raises(AudiobenchError) as refused:
        load_index(tmp_path / "data")
    assert str(index) in str(refused.value) and repr(sample_id) in str(refused.value)


@pytest.mark.parametrize(
    "audio", ["../outside.wav", "/etc/passwd", "audio/../../outside.wav", "audio/link.wav"]
)
def test_index_paths_outside_the_dataset_are_refused_at_load(tmp_path, audio):
    (tmp_path / "outside.wav").write_bytes(b"secret")
    (tmp_path / "data" / "audio").mkdir(parents=True)
    (tmp_path / "data" / "audio" / "link.wav").symlink_to(tmp_path / "outside.wav")
    index = write_dataset(tmp_path / "data", sample_id="-dQw4w9WgXc_000030", audio=audio)
    with pytest.raises(AudiobenchError, match="points outside the dataset") as refused:
        load_index(tmp_path / "data")
    assert str(index) in str(refused.value) and "-dQw4w9WgXc_000030" in str(refused.value)


def test_ids_starting_with_a_dash_and_inner_dots_stay_usable(tmp_path):
    write_dataset(tmp_path / "data", sample_id="-dQw4w9WgXc_000030.v2")
    [sample] = load_index(tmp_path / "data")
    assert sample.audio_path == (tmp_path / "data" / "audio" / "s1.wav").resolve()
    assert (
        RunDirectory(tmp_path / "run").image_path(sample.id).parent == tmp_path / "run" / "images"
    )


@pytest.mark.parametrize("sample_id", ESCAPING_IDS)
def test_run_images_cannot_be_written_outside_the_run(tmp_path, sample_id):
    run = RunDirectory(tmp_path / "runs" / "one")
    run.create()
    with pytest.raises(AudiobenchError, match="not usable as a file name") as refused:
        run.write_image(sample_id, Image.new("RGB", (2, 2)))
    assert str(run.path) in str(refused.value)
    written = {p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    assert written == set()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(sample_id=st.text(alphabet="ab-_./\\\x00 é", max_size=8) | st.text())
def test_an_image_path_is_inside_the_images_folder_or_refused(sample_id):
    run = RunDirectory(Path("/runs/one"))
    try:
        path = run.image_path(sample_id)
    except AudiobenchError:
        return
    assert path.parent == Path("/runs/one/images") and path.name == f"{sample_id}.png"
    assert ".." not in path.parts and "\x00" not in str(path)


def fake_run(folder: Path, sample_ids: list[str]) -> Path:
    """A run directory as `audiobench run` leaves it, with a samples table someone edited."""
    run = RunDirectory(folder)
    run.create()
    atomic_write_json(run.run_file, {"method": "reference", "dataset": "nowhere", "split": "test"})
    table = pd.DataFrame({"id": sample_ids, "label": "dog", "status": "ok"})
    run.write_samples(table)
    return folder


def test_a_tampered_samples_table_cannot_make_export_read_outside_the_run(tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    run = fake_run(tmp_path / "runs" / "one", ["../../secret"])
    with pytest.raises(AudiobenchError, match=re.escape("'../../secret'")):
        build_items([run], per_method=1, attention_checks=0)


def test_a_clip_list_cannot_make_prepare_write_outside_its_output(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "list.csv").write_text("../../../ab,30,dog,train\n")
    settings_ = PrepareSettings(tmp_path / "list.csv", tmp_path / "videos", tmp_path / "a" / "b")
    with pytest.raises(AudiobenchError, match=re.escape(f"{tmp_path / 'list.csv'}, line 1")):
        prepare_vggsound(settings_, scorer=None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["list.csv", "videos"]


# --- (c) user strings are escaped in the HTML audiobench writes -----------------------------

EVIL = ["<script>alert(1)</script>", '"onload="alert(1)', "'><img src=x onerror=alert(1)>"]


class Page(HTMLParser):
    """What a browser would build from the page: its elements, attributes and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        self.text += [value for _, value in attrs if value]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_shown_as_text(page: str, clean_page: str, inert: tuple[str, ...] = ()) -> None:
    """Every evil string reaches the reader as literal text and adds no element or attribute
    compared with the same page made from harmless strings. Only strings in `inert` may appear
    raw: a quote without a "<" is harmless in text, outside any tag."""
    parsed, clean = Page(page), Page(clean_page)
    assert parsed.tags == clean.tags
    assert sorted(parsed.attributes) == sorted(clean.attributes)
    for evil in EVIL:
        assert any(evil in text for text in parsed.text), evil
        assert evil in inert or evil not in page, evil


def form_items(folder: Path, labels: list[str]) -> list[Item]:
    image = folder / "frame.png"
    Image.new("RGB", (4, 4)).save(image)
    return [
        Item(f"item-{n:08x}", str(image), label, "m", "r", f"s{n}", "rating")
        for n, label in enumerate(labels)
    ]


def test_labels_reach_the_rating_form_as_text(tmp_path):
    page = export(form_items(tmp_path, EVIL), tmp_path / "evil", "html").read_text()
    clean = ["harmless label one", "harmless label two", "harmless label three"]
    clean_page = export(form_items(tmp_path, clean), tmp_path / "clean", "html").read_text()
    assert_shown_as_text(page, clean_page)


def report_page(name: str) -> str:
    rows = [
        Row(None, name, name, "audio", "full", {"aic": {"value": 0.5, "n": 3, "ci95": None}}),
        Row(None, "other", "other", "audio", "full", {"aic": {"value": 0.25, "n": 3}}),
    ]
    table = pd.DataFrame({name: [1.0]}, index=pd.Index([name], name="label"))
    return html_report(rows, False, {name: b"\x89PNG"}, {name: table})


def test_method_names_labels_and_titles_reach_the_report_as_text():
    evil = " ".join(EVIL)
    # pandas' to_html escapes <, > and & but not quotes in cells; the parse shows it is text
    assert_shown_as_text(report_page(evil), report_page("harmless"), inert=(EVIL[1],))
