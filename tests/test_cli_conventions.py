"""The command line behaves like the tools researchers already use (issue 20).

Help in click's conventions (no Python type tags, bare flags, `RUN_DIR`), `--version`, one-line
errors that suggest the closest name, light start-up (no torch for help, version and the method
list), one line on Ctrl-C with exit code 130, and `models check` readable at 80 columns.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version

import pytest
import typer.main
from rich.console import Console

import audiobench.cli
from audiobench.cli import app
from audiobench.registry import Method, MethodCard, discover, get_method

TYPE_TAG = re.compile(r"<(bool|str|int|float|path|list\[\w+\])>")


def command_paths() -> list[list[str]]:
    """The words of every command and group of the app, the root included."""

    def walk(command, words: list[str]) -> list[list[str]]:
        children = getattr(command, "commands", {})
        return [words] + [
            path for name, sub in children.items() for path in walk(sub, [*words, name])
        ]

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("words", command_paths(), ids=lambda words: " ".join(words) or "root")
def test_help_has_no_python_type_tags(cli, words):
    code, out, _ = cli(*words, "--help")
    assert code == 0
    assert "Usage: " in out
    assert not TYPE_TAG.search(out), TYPE_TAG.search(out)
    assert "{" not in usage(out) and "<" not in usage(out)  # no `{run_dir}`


def help_row(out: str, option: str) -> str:
    """The line of one option in the options panel (`--out` and not `--out-dir`)."""
    rows = [line for line in out.splitlines() if line.startswith("│")]
    return next(line for line in rows if re.search(rf"\s{option}\s", line))


def usage(out: str) -> str:
    """The usage line after "Usage:"; `main` names the program audiobench however it was started
    (click would otherwise take `python -m pytest` from sys.argv)."""
    line = next(line for line in out.splitlines() if "Usage:" in line)
    return line.split("Usage:")[1].strip()


def test_flags_show_no_value_and_options_a_conventional_metavar(cli):
    _, out, _ = cli("train", "--help")
    assert re.search(
        r"--resume\s{2,}Continue from the newest checkpoint", help_row(out, "--resume")
    )
    assert re.search(r"--out\s+PATH\s", help_row(out, "--out"))
    assert re.search(r"--seed\s+INTEGER\s", help_row(out, "--seed"))
    assert re.search(r"--set\s+TEXT\s", help_row(out, "--set"))
    _, out, _ = cli("verify", "--help")
    assert re.search(r"--json\s{2,}Print the findings as JSON", help_row(out, "--json"))


def test_arguments_are_upper_case_as_in_click(cli):
    _, out, _ = cli("evaluate", "--help")
    assert usage(out) == "audiobench evaluate [OPTIONS] [RUN_DIR]"
    assert re.search(r"│\s+RUN_DIR\s+A run directory", out)
    _, out, _ = cli("report", "--help")
    assert usage(out) == "audiobench report [OPTIONS] RUN_DIRS..."
    code, _, err = cli("report")
    assert code == 2 and err.startswith("error: Missing argument 'RUN_DIRS'. (see '")


def test_version(cli):
    code, out, err = cli("--version")
    assert (code, out, err) == (0, f"audiobench {version('audiobench')}\n", "")


def test_unknown_option_is_one_line_with_clicks_suggestion(cli):
    code, _, err = cli("run", "--metod", "sd-text")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: No such option: --metod")
    assert "--method" in err and " run --help')" in err  # after the program's name


def test_group_without_command_prints_its_help_and_no_error_line(cli):
    code, out, err = cli("models")
    assert code == 2 and usage(out) == "audiobench models [OPTIONS] COMMAND [ARGS]..." and err == ""


def run_with(demo_dir, tmp_path, *options: str) -> list[str]:
    data = ["--data", str(demo_dir), "--profile", "tiny", "--out", str(tmp_path)]
    return ["run", "--method", "sd-text", *data, *options]


def test_misspelt_set_key_gets_the_closest_and_the_known_keys(cli, demo_dir, tmp_path):
    code, _, err = cli(*run_with(demo_dir, tmp_path, "--set", "stpes=3"))
    assert code == 2 and err.count("\n") == 1
    assert "unknown option 'stpes' (did you mean 'steps'?)" in err
    assert "known options: prompt, guidance_scale, steps" in err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("steps=many", "option steps takes an integer, not 'many'"),
        ("guidance_scale=high", "option guidance_scale takes a number, not 'high'"),
    ],
)
def test_set_values_are_described_in_words(cli, demo_dir, tmp_path, setting, message):
    code, _, err = cli(*run_with(demo_dir, tmp_path, "--set", setting))
    assert code == 2 and err == f"error: {message}\n"


def test_training_a_method_that_cannot_be_trained_names_the_trainable_ones(cli, demo_dir, tmp_path):
    code, _, err = cli("train", "--method", "sd-text", "--data", demo_dir, "--out", tmp_path)
    assert code == 2
    assert err == (
        "error: method 'sd-text' is not trainable; trainable methods: "
        "audiotoken, audiotoken-cl, audiotoken-speaker\n"
    )


HEAVY = ("torch", "diffusers", "transformers")


@pytest.mark.parametrize("arguments", [["--help"], ["--version"], ["methods"]])
def test_light_commands_import_no_torch(arguments):
    """A fresh interpreter runs the command in-process, then lists the heavy modules it holds."""
    script = (
        "import sys\n"
        "from audiobench.cli import main\n"
        "try:\n"
        f"    main({arguments!r})\n"
        "finally:\n"
        f"    print('heavy:', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stderr
    if arguments == ["methods"]:  # the listing is still complete, from the cards
        assert re.search(r"audiotoken-speaker\s+│\s+AudioToken on X-vector speaker", result.stdout)
        assert "sd, xvector" in result.stdout and "vqgan, wav2clip, clip_b32" in result.stdout


def test_builtin_methods_are_declared_by_cards_that_match_their_classes():
    for name, info in discover().items():
        if info.distribution != "audiobench":
            continue
        assert isinstance(info.entry_point.load(), MethodCard), name
        method_class = get_method(name)
        assert info.card.implementation.endswith(f":{method_class.__qualname__}")
        assert method_class.description == info.card.description
        assert method_class.roles == info.card.roles
        assert info.card.trainable == (method_class.TrainConfig is not None)


@dataclass(frozen=True)
class _TrainOptions:
    steps: int = 1


def test_a_card_that_disagrees_with_its_class_about_training_is_refused():
    card = MethodCard("test", "tests.test_cli_conventions:Untrainable", trainable=True)
    with pytest.raises(TypeError, match="trainable=True, but it declares no TrainConfig"):

        class Untrainable(Method, card=card):
            def setup(self, context):
                pass

            def generate(self, inputs, seeds):
                return []

    class Trainable(Method, card=card):
        TrainConfig = _TrainOptions

        def setup(self, context):
            pass

        def generate(self, inputs, seeds):
            return []

    assert Trainable.description == "test"


def test_ctrl_c_in_a_run_says_how_to_resume(cli, demo_dir, tmp_path, monkeypatch):
    def interrupted(settings):
        raise KeyboardInterrupt

    monkeypatch.setattr("audiobench.runner.execute", interrupted)
    code, _, err = cli(*run_with(demo_dir, tmp_path))
    assert code == 130
    assert err == "interrupted: finished images are saved; rerun the same command to resume\n"


def test_ctrl_c_in_a_command_that_does_not_resume_says_interrupted(cli, tmp_path, monkeypatch):
    def interrupted(out, seed):
        raise KeyboardInterrupt

    monkeypatch.setattr("audiobench.data.demo.write_demo_dataset", interrupted)
    code, out, err = cli("data", "demo", "--out", tmp_path / "demo")
    assert (code, out, err) == (130, "", "interrupted\n")


def test_models_check_json_has_one_object_per_role(cli, tmp_path):
    code, out, _ = cli("models", "check", "--json", "--weights-dir", tmp_path)
    assert code == 1  # nothing is in the empty weights folder
    roles = {entry["role"]: entry for entry in json.loads(out)}
    assert {"sd", "beats", "inception"} <= set(roles)
    beats = roles["beats"]
    assert beats["status"] == "missing" and beats["location"] is None
    assert "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt" in beats["how_to_obtain"]
    assert "audiotoken" in beats["used_by"] and beats["files"] == []


def test_models_check_wraps_names_and_urls_at_80_columns(cli, tmp_path, monkeypatch):
    _, out, _ = cli("models", "check", "--json", "--weights-dir", tmp_path)
    obtain = [entry["how_to_obtain"] for entry in json.loads(out)]
    monkeypatch.setattr(audiobench.cli, "console", Console(width=80))
    code, out, _ = cli("models", "check", "--weights-dir", tmp_path)
    assert code == 1
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    last_column = "".join(row[4] for row in rows).replace(" ", "")
    for text in obtain:  # each sentence whole, read down its cell
        assert text.replace(" ", "") in last_column
    assert any("https://" in text for text in obtain)  # URLs are among what must not be cut
