"""Method discovery through entry points, including a method from another distribution."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from audiobench.errors import AudiobenchError
from audiobench.registry import Method, build_config, discover, get_method
from tests.conftest import run_subprocess

PLUGIN_SOURCE = '''
"""A third-party method: solid images whose colour comes from the label."""
import hashlib
from PIL import Image
from audiobench.registry import Method


class SolidColour(Method):
    description = "Solid colour from a hash of the label"

    def setup(self, context):
        pass

    def prepare(self, sample):
        return hashlib.sha256(sample.label.encode()).digest()[:3]

    def generate(self, inputs, seeds):
        return [Image.new("RGB", (8, 8), tuple(colour)) for colour in inputs]
'''


def install_distribution(
    site: Path,
    name: str,
    entry_points: dict[str, str],
    source: str,
    group: str = "audiobench.methods",
) -> None:
    """Lay out an installed distribution (module + dist-info) as pip would in `site`."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(source)
    dist_info = site / f"{module}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(site, "solid-plugin", {"solid": "solid_plugin:SolidColour"}, PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("solid_plugin", None)


def test_builtin_methods_come_from_entry_points():
    methods = discover()
    assert {"reference", "sd-text"} <= set(methods)
    assert methods["sd-text"].distribution == "audiobench"
    assert methods["sd-text"].load().roles == ("sd",)
    assert get_method("reference").roles == ()


def test_third_party_distribution_is_discovered_and_runs(plugin_site, demo_dir, tmp_path):
    info = discover()["solid"]
    assert info.distribution == "solid-plugin"
    assert issubclass(info.load(), Method)

    env = {"PYTHONPATH": str(plugin_site)}
    listing = run_subprocess("methods", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "solid" in listing.stdout and "solid-plugin" in listing.stdout

    result = run_subprocess(
        "run",
        "--method",
        "solid",
        "--data",
        demo_dir,
        "--profile",
        "tiny",
        "--out",
        tmp_path / "runs",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    images = sorted((tmp_path / "runs" / "solid-test-tiny-seed0" / "images").glob("*.png"))
    assert len(images) == 12


def test_unknown_method_exits_2_and_lists_known_ones(cli, demo_dir, tmp_path):
    code, _, err = cli(
        "run", "--method", "sd-txt", "--data", demo_dir, "--profile", "tiny", "--out", tmp_path
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "unknown method 'sd-txt'" in err
    assert "did you mean 'sd-text'" in err
    assert "reference" in err and "sd-text" in err


def test_same_name_from_two_distributions_is_an_error(plugin_site):
    install_distribution(plugin_site, "other-plugin", {"solid": "other_plugin:Clash"}, "")
    with pytest.raises(
        AudiobenchError,
        match=r"registered twice: by (other|solid)-plugin.* and by (other|solid)-plugin",
    ):
        discover()


def test_invalid_name_and_non_method_class_are_rejected(plugin_site):
    install_distribution(
        plugin_site, "bad-plugin", {"not_a_method": "bad_plugin:Thing"}, "class Thing:\n    pass\n"
    )
    with pytest.raises(AudiobenchError, match=r"method name 'not_a_method'.*invalid"):
        discover()


def test_plugin_that_is_not_a_method_subclass(plugin_site):
    install_distribution(
        plugin_site, "thing-plugin", {"thing": "thing_plugin:Thing"}, "class Thing:\n    pass\n"
    )
    with pytest.raises(AudiobenchError, match=r"'thing'.*not a subclass"):
        get_method("thing")


def test_plugin_that_fails_to_import_names_its_distribution(plugin_site):
    install_distribution(
        plugin_site,
        "broken-plugin",
        {"broken": "broken_plugin:Missing"},
        textwrap.dedent("raise ImportError('needs a library that is absent')"),
    )
    with pytest.raises(AudiobenchError, match="'broken' from broken-plugin failed to import"):
        get_method("broken")
    assert "sd-text" in discover()  # the broken plugin does not hide the others


@dataclass(frozen=True)
class _Options:
    steps: int = 50
    guidance_scale: float = 7.5
    prompt: str = "A photo of a {label}"
    negative: bool = False


class _Configured(Method):
    description = "test"
    Config = _Options

    def setup(self, context):
        pass

    def generate(self, inputs, seeds):
        return []


def test_build_config_converts_overrides_to_field_types():
    config = build_config(
        _Configured.Config, {"steps": "25", "guidance_scale": "3", "negative": "yes"}
    )
    assert config == _Options(steps=25, guidance_scale=3.0, negative=True)
    assert build_config(_Configured.Config, {}) == _Options()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stpes": "3"}, "unknown option 'stpes'.*steps"),
        ({"steps": "many"}, "steps takes an integer, not 'many'"),
        ({"negative": "maybe"}, "negative takes true or false"),
    ],
)
def test_build_config_rejects_bad_overrides(overrides, message):
    with pytest.raises(AudiobenchError, match=message):
        build_config(_Configured.Config, overrides)
