"""The `audiobench` command line: thin wrappers that parse options and print results.

Every command's help ends with a working example. Errors the user can fix are printed as one
line on stderr with exit code 2 (click's usage errors too, with their "possible options"); Ctrl-C
prints one line, saying how to resume where the command can, and exits with 130; everything else
keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from audiobench.bounds import Bounds
from audiobench.cli_conventions import (
    ConventionalGroup,
    Interrupted,
    on_interrupt,
    usage_error_line,
)
from audiobench.errors import AudiobenchError

app = typer.Typer(
    cls=ConventionalGroup,
    help="audiobench: the open benchmark suite for audio-to-image generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Model roles and their weights.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets in audiobench's format.", no_args_is_help=True)
prepare_app = typer.Typer(help="Prepare a public dataset from local files.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
data_app.add_typer(prepare_app, name="prepare")
human_app = typer.Typer(
    help="Human evaluation: rating sheets and their analysis.", no_args_is_help=True
)
app.add_typer(human_app, name="human-eval")
leaderboard_app = typer.Typer(help="The versioned VGGSound leaderboard.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")
console = Console()
RERUN_RESUMES = "rerun the same command to resume"


def _print_version(value: bool) -> None:
    if value:
        from audiobench import __version__

        print(f"audiobench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """The options of `audiobench` itself, before any command (the app's help is `app`'s)."""


ProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        help="Weights: 'paper' (published), 'paper-random' (published sizes, random weights) or "
        "'tiny' (toy sizes, random weights; tests).",
    ),
]
WeightsOption = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        help="Folder of paper weights (default: $AUDIOBENCH_WEIGHTS, else ~/.cache/audiobench/"
        "weights); the Hugging Face cache is searched too.",
    ),
]


def _within(bounds: Bounds) -> Callable[[typer.CallbackParam, float | None], float | None]:
    """A callback for a numeric option that refuses values outside `bounds` (NaN and inf too)
    while the command line is parsed, so nothing is loaded or written; `main` prints the error
    as one line, in the words of `Bounds.check`."""

    def check(param: typer.CallbackParam, value: float | None) -> float | None:
        if value is not None:  # an optional option that was not given
            bounds.check(param.opts[0], value)
        return value

    return check


NON_NEGATIVE = _within(Bounds(low=0))
AT_LEAST_1 = _within(Bounds(low=1))
AT_LEAST_2 = _within(Bounds(low=2))
POSITIVE = _within(Bounds(low=0, low_inclusive=False))


@app.command("methods")
def list_methods() -> None:
    """List the registered methods, what they do and the model roles they need.

    Example: audiobench methods
    """
    from audiobench.registry import discover

    table = Table("method", "description", "model roles", "from")
    for name, info in discover().items():
        card = info.card
        table.add_row(name, card.description, ", ".join(card.roles) or "-", info.distribution)
    console.print(table)


MetricsOption = Annotated[
    str | None,
    typer.Option(
        "--metrics",
        help="Comma-separated metric names, or 'all' (default: the paper's Table 1 metrics; "
        "`audiobench metrics` lists them).",
    ),
]


@app.command("metrics")
def list_metrics() -> None:
    """List the registered metrics: direction, inputs, model roles, whether Table 1 shows them.

    Example: audiobench metrics
    """
    from audiobench.metrics.plugin import default_metrics, discover_metrics

    defaults = default_metrics()
    table = Table("metric", "description", "better", "inputs", "model roles", "default")
    for name, metric in discover_metrics().items():
        table.add_row(
            name,
            metric.description,
            "higher" if metric.higher_is_better else "lower",
            ", ".join(metric.inputs),
            ", ".join(sorted(metric.roles())) or "-",
            "yes" if name in defaults else "",
        )
    console.print(table)


@models_app.command("check")
def models_check(
    profile: ProfileOption = "paper",
    weights_dir: WeightsOption = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also compare every weight file's keys and shapes with the role's manifest "
            "(reads headers only).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list, one object per role.")
    ] = False,
) -> None:
    """Show where each model role's weights resolve; exit 1 if any is missing (or, with --deep,
    does not fit its loader).

    Example: audiobench models check --profile paper --weights-dir /data/weights --deep
    """
    roles = _role_report(profile, weights_dir, deep)
    if as_json:
        print(json.dumps(roles, indent=2))
    else:
        _print_role_table(roles, profile)
    if any(role["status"] != "found" for role in roles):
        raise typer.Exit(1)


def _role_report(profile: str, weights_dir: Path | None, deep: bool) -> list[dict[str, Any]]:
    """One entry per role: where its weights are (or how to obtain them) and, with `deep`, how
    each weight file compares with the role's manifest."""
    from audiobench.models.inventory import role_status
    from audiobench.models.manifest import check_files

    roles = []
    for status in role_status(profile, weights_dir):
        checks = []
        if deep and status.location and profile == "paper":
            checks = check_files(status.role.name, Path(status.location))
        fits = all(check.ok for check in checks)
        roles.append(
            {
                "role": status.role.name,
                "used_by": list(status.used_by),
                "status": ("found" if fits else "mismatch") if status.location else "missing",
                "location": status.location,
                "how_to_obtain": None if status.location else status.role.how_to_obtain,
                "files": [
                    {
                        "component": check.component,
                        "file": None if check.file is None else str(check.file),
                        "fits": check.ok,
                        "detail": check.describe(),
                    }
                    for check in checks
                ],
            }
        )
    return roles


def _print_role_table(roles: list[dict[str, Any]], profile: str) -> None:
    """`models check` as a table that wraps long file names and URLs rather than cutting them."""
    colours = {"found": "green", "missing": "red", "mismatch": "red"}
    headers = ("role", "used by", "status", "location or how to obtain")
    table = Table(*(Column(header, overflow="fold") for header in headers))
    for role in roles:
        details = [role["location"] or role["how_to_obtain"], *(f["detail"] for f in role["files"])]
        table.add_row(
            role["role"],
            ", ".join(role["used_by"]),
            f"[{colours[role['status']]}]{role['status']}[/]",
            escape("; ".join(details)),
        )
    console.print(table)
    for status, message in (
        ("missing", f"missing for the {profile} profile"),
        ("mismatch", "weight files that do not fit their loader"),
    ):
        names = [role["role"] for role in roles if role["status"] == status]
        if names:
            console.print(f"{message}: {', '.join(names)}")


@models_app.command("manifest")
def models_manifest(
    role: Annotated[str, typer.Argument(help="A model role, e.g. vqgan or sd.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Print the state-dict keys and shapes that a role's paper loader reads from its weight
    files, after its own filtering (built on the meta device: no weights needed).

    Example: audiobench models manifest vqgan --json
    """
    from audiobench.models.inventory import roles_in_use
    from audiobench.models.manifest import manifest_document

    roles_in_use()  # registers the roles of every method
    document = manifest_document(role)
    if as_json:
        print(json.dumps(document, indent=2))
        return
    components = document.get("components", {"": document.get("keys", {})})
    for component, keys in components.items():
        for key, shape in keys.items():
            name = f"{component}/{key}" if component else key
            print(f"{name}\t{tuple(shape)}")


@models_app.command("fetch")
def models_fetch(
    role: Annotated[list[str] | None, typer.Option("--role", help="Only these roles.")] = None,
    weights_dir: WeightsOption = None,
) -> None:
    """Download the paper weights of every role (or the named ones) into the weights folder.

    Every role is tried, with resumable downloads and a progress bar; a table of what was done,
    what failed and why, and what to obtain by hand ends the output. Exit code 1 if any role is
    still missing. Needs a network and, for gated repositories, `huggingface-cli login`.
    Example: audiobench models fetch --role sd --weights-dir /data/weights
    """
    from audiobench.models.inventory import fetch_roles

    headers = ("role", "status", "where, why or how")
    table = Table(
        *(Column(header, overflow="fold") for header in headers), title="audiobench models fetch"
    )
    colours = {"done": "green", "failed": "red", "by hand": "yellow"}
    outcomes = []
    with on_interrupt(f"partial downloads are kept; {RERUN_RESUMES}"):
        for outcome in fetch_roles(role, weights_dir):
            outcomes.append(outcome)
            console.print(f"{outcome.role}: {outcome.status}", highlight=False)
    for outcome in outcomes:
        colour = colours[outcome.status]
        table.add_row(outcome.role, f"[{colour}]{outcome.status}[/]", escape(outcome.detail))
    console.print(table)
    missing = [outcome.role for outcome in outcomes if outcome.status != "done"]
    if missing:
        console.print(f"still missing: {', '.join(missing)}", highlight=False)
        raise typer.Exit(1)


@data_app.command("demo")
def data_demo(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset to.")],
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the synthetic data.", callback=NON_NEGATIVE)
    ] = 0,
) -> None:
    """Write the synthetic demo dataset (6 VGGSound classes, 36 clips, train and test splits).

    Example: audiobench data demo --out demo
    """
    from audiobench.data.demo import write_demo_dataset

    index = write_demo_dataset(out, seed)
    console.print(f"demo dataset written: {index}")


@prepare_app.command("vggsound")
def prepare_vggsound(
    csv: Annotated[
        Path, typer.Option("--csv", help="vggsound.csv, or the test list (<id>.mp4,label).")
    ],
    video_dir: Annotated[Path, typer.Option("--video-dir", help="Folder of the clips' mp4s.")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    audio_dir: Annotated[
        Path | None, typer.Option("--audio-dir", help="Folder of wavs (default: --video-dir).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train, test or all.")] = "all",
    filters: Annotated[
        list[Path] | None,
        typer.Option("--filter", help="File of ids to drop, one per line (repeatable)."),
    ] = None,
    frame_select: Annotated[
        str,
        typer.Option(
            "--frame-select",
            help="Reference frames: 'centre' of the audio window or 'clip' (best CLIP score).",
        ),
    ] = "centre",
    train_frame_select: Annotated[
        str,
        typer.Option(
            "--train-frame-select",
            help="Training crops' frames: 'clip' (best CLIP score, the paper's) or 'centre'.",
        ),
    ] = "clip",
    workers: Annotated[
        int, typer.Option("--workers", help="Decoding processes.", callback=AT_LEAST_1)
    ] = 4,
    profile: ProfileOption = "paper",
    device: Annotated[str, typer.Option("--device", help="Device of the CLIP scorer.")] = "auto",
    weights_dir: WeightsOption = None,
) -> None:
    """Turn a local VGGSound copy into an audiobench dataset (resumable).

    Example: audiobench data prepare vggsound --csv vggsound.csv --video-dir clips --out data
    """
    import torch

    from audiobench.data.vggsound import PrepareSettings, clip_scorer, needs_scorer
    from audiobench.data.vggsound import prepare_vggsound as prepare
    from audiobench.environment import resolve_device
    from audiobench.models import LoadOptions, ModelZoo

    settings = PrepareSettings(
        clip_list=csv,
        video_dir=video_dir,
        out=out,
        audio_dir=audio_dir,
        split=split,
        filters=filters or [],
        frame_select=frame_select,
        train_frame_select=train_frame_select,
        workers=workers,
    )
    scorer = None
    if needs_scorer(settings):
        options = LoadOptions(resolve_device(device), torch.float32)
        scorer = clip_scorer(ModelZoo(profile, options, weights_dir))
    with on_interrupt(f"prepared clips are kept; {RERUN_RESUMES}"):
        summary = prepare(settings, scorer)
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(summary.skipped.items()))
    console.print(
        f"{summary.out}: {summary.prepared} clips prepared; skipped: {skipped or 'none'}"
        + (" (see skipped.csv)" if skipped else "")
    )
    if summary.prepared == 0:
        raise typer.Exit(1)


@prepare_app.command("speakers")
def prepare_speakers(
    root: Annotated[
        Path, typer.Option("--root", help="A folder per speaker: ROOT/<name>/*.{wav,mp4}.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    clip_seconds: Annotated[
        float,
        typer.Option(
            "--clip-seconds", help="Length of each clip cut from a recording.", callback=POSITIVE
        ),
    ] = 5.0,
) -> None:
    """Turn folders of speaker recordings into a dataset (label = speaker, split by recording).

    Example: audiobench data prepare speakers --root voices --out data/speakers
    """
    from audiobench.data.speakers import prepare_speakers as prepare

    summary = prepare(root, out, clip_seconds)
    samples = ", ".join(f"{count} {split}" for split, count in sorted(summary.samples.items()))
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(summary.skipped.items()))
    console.print(
        f"{summary.out}: {summary.speakers} speakers, samples: {samples}; "
        f"skipped: {skipped or 'none'}" + (" (see skipped.csv)" if skipped else "")
    )


@app.command("run")
def run(
    method: Annotated[str, typer.Option("--method", help="A method from `audiobench methods`.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (holds index.parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Folder of runs; this run gets a subfolder.")],
    split: Annotated[str, typer.Option("--split", help="Dataset split to generate for.")] = "test",
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Only the first N samples of the split, in index order.",
            callback=AT_LEAST_1,
        ),
    ] = None,
    profile: ProfileOption = "paper",
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Run seed; each sample's seed derives from it.", callback=NON_NEGATIVE
        ),
    ] = 0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Images generated per batch.", callback=AT_LEAST_1)
    ] = 8,
    device: Annotated[
        str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    ] = "auto",
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Trained weights for methods that use them.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--set", help="Method option KEY=VALUE, e.g. --set steps=25 (repeatable)."),
    ] = None,
    weights_dir: WeightsOption = None,
) -> None:
    """Generate an image for every sample of a split with one method.

    Restarting the same command resumes: finished images are kept, the rest are made.
    Example: audiobench run --method sd-text --data demo --profile tiny --out runs
    """
    from audiobench.distributed import is_helper_process
    from audiobench.runner import RunSettings, execute

    settings = RunSettings(
        method=method,
        data_dir=data,
        out=out,
        split=split,
        limit=limit,
        profile=profile,
        seed=seed,
        batch_size=batch_size,
        device=device,
        options=_parse_options(option or []),
        checkpoint=checkpoint,
        weights_dir=weights_dir,
    )
    with on_interrupt(f"finished images are saved; {RERUN_RESUMES}"):
        summary = execute(settings)
    if not is_helper_process():
        console.print(
            f"{summary.run_dir}: {summary.ok}/{summary.total} images ({summary.generated} new), "
            f"{summary.failed} failed"
            + (" - see samples.parquet for the errors" if summary.failed else "")
        )
    if summary.ok == 0:
        raise typer.Exit(1)


@app.command("train")
def train(
    method: Annotated[str, typer.Option("--method", help="A trainable method, e.g. audiotoken.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (holds index.parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and final weights.")],
    split: Annotated[str, typer.Option("--split", help="Split to train on.")] = "train",
    profile: ProfileOption = "paper",
    mixed_precision: Annotated[
        str, typer.Option("--mixed-precision", help="no, fp16 or bf16.")
    ] = "no",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")
    ] = False,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of initialisation and sampling.", callback=NON_NEGATIVE),
    ] = 0,
    device: Annotated[
        str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    ] = "auto",
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Training option KEY=VALUE of the method, e.g. --set steps=50 (repeatable).",
        ),
    ] = None,
    weights_dir: WeightsOption = None,
) -> None:
    """Train a method (AudioToken: only the embedder) with the paper's defaults.

    The method declares its training options and their paper defaults (AudioToken: steps,
    batch_size, grad_accum, lr, checkpoint_every); --set overrides them.
    Example: audiobench train --method audiotoken --data demo --out ckpt --set steps=50
    (add --profile tiny to try it offline with random weights)
    """
    from audiobench.distributed import is_helper_process
    from audiobench.trainer import TrainSettings
    from audiobench.trainer import train as train_method

    settings = TrainSettings(
        method=method,
        data_dir=data,
        out=out,
        split=split,
        profile=profile,
        mixed_precision=mixed_precision,
        resume=resume,
        seed=seed,
        device=device,
        weights_dir=weights_dir,
        options=_parse_options(option or []),
    )
    with on_interrupt("checkpoints are kept in --out; rerun with --resume to continue"):
        folder = train_method(settings)
    if is_helper_process():
        return
    console.print(
        f"trained weights in {folder} (use: audiobench run --method {method} "
        f"--checkpoint {folder} ...)"
    )


@app.command("evaluate")
def evaluate(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="A run directory made by `audiobench run` (or use --images)."),
    ] = None,
    metrics: MetricsOption = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Score a folder of <sample_id>.png/.jpg made elsewhere: it becomes a run "
            "directory under --out (needs --data).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Dataset folder (with --images, or if it moved since the run)."
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Dataset split (with --images).")] = "test",
    out: Annotated[
        Path, typer.Option("--out", help="Where --images writes its run directory.")
    ] = Path("runs"),
    name: Annotated[
        str | None,
        typer.Option("--name", help="Row name of --images (default: the folder's name)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="Metric models' profile (default: the run's; 'paper' with --images)."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Inputs per model call.", callback=AT_LEAST_1)
    ] = 32,
    pool_size: Annotated[
        int | None,
        typer.Option(
            "--pool-size",
            help="Win rates (AIS, IIS) against a fixed random pool of M.",
            callback=_within(Bounds(low=2)),
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of the pool and the bootstrap.", callback=NON_NEGATIVE),
    ] = 0,
    set_resamples: Annotated[
        int,
        typer.Option(
            "--set-resamples",
            help="Bootstrap resamples of whole-set metrics' intervals (FID, KID, CMMD).",
            callback=AT_LEAST_1,
        ),
    ] = 100,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Compute every embedding afresh; cache nothing.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Drop the metrics of earlier evaluations (default: keep)."),
    ] = False,
    allow_dataset_change: Annotated[
        bool,
        typer.Option(
            "--allow-dataset-change",
            help="Score against the dataset as it is now, though its index, audio or frames "
            "changed since the run (recorded in metrics.json).",
        ),
    ] = False,
    weights_dir: WeightsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout.")] = False,
) -> None:
    """Score a run with the paper's AIC, FID, AIS and IIS (or --metrics); write metrics.json.

    Per-sample values go into the run's samples.parquet.

    Example: audiobench evaluate runs/sd-text-test-tiny-seed0
    Example: audiobench evaluate --images my_images/ --data data/vggsound --out runs
    """
    from audiobench.distributed import is_helper_process
    from audiobench.evaluation import EvaluateSettings
    from audiobench.evaluation import evaluate as evaluate_run
    from audiobench.metrics.plugin import parse_metrics

    names = parse_metrics(metrics)
    if (run_dir is None) == (images is None):
        raise AudiobenchError("give either a run directory or --images DIR (with --data)")
    if images is not None:
        run_dir, profile = _imported_run(images, data, split, out, name, profile or "paper", device)
        data = None
    assert run_dir is not None  # given, or made from --images just above
    settings = EvaluateSettings(
        run_dir=run_dir,
        metrics=names,
        data_dir=data,
        profile=profile,
        device=device,
        batch_size=batch_size,
        pool_size=pool_size,
        seed=seed,
        set_resamples=set_resamples,
        weights_dir=weights_dir,
        no_cache=no_cache,
        replace=replace,
        allow_dataset_change=allow_dataset_change,
    )
    with on_interrupt(None if no_cache else f"computed embeddings are cached; {RERUN_RESUMES}"):
        report = evaluate_run(settings)
    if is_helper_process():
        return
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    from audiobench.metrics.plugin import discover_metrics, min_samples_of
    from audiobench.report import format_number

    table = Table("metric", "value", "95% CI", "N", title=f"{run_dir} ({report['profile']})")
    for metric, result in report["metrics"].items():
        arrow = "up" if result["higher_is_better"] else "down"
        low, high = result["ci95"]
        places = discover_metrics()[metric].decimals if metric in discover_metrics() else 2
        table.add_row(
            f"{metric.upper()} ({arrow})",
            format_number(result["value"], places),
            f"{format_number(low, places)} - {format_number(high, places)}",
            str(result["n"]),
        )
    console.print(table)
    for metric, result in report["metrics"].items():
        minimum = min_samples_of(metric)
        if minimum is not None and result["n"] < minimum:
            console.print(
                f"warning: {metric.upper()} from {result['n']} samples, fewer than {minimum}: "
                "biased, not comparable with values at other N"
            )
    if report["dataset"]["changed_since_run"]:
        console.print("warning: the dataset changed since the run (--allow-dataset-change)")
    if report["excluded"]:
        console.print(f"{len(report['excluded'])} samples excluded (listed in metrics.json)")


def _imported_run(
    images: Path,
    data: Path | None,
    split: str,
    out: Path,
    name: str | None,
    profile: str,
    device: str,
) -> tuple[Path, str]:
    """The run directory `--images` makes (by the main process of a launch); prints what was
    missing or unmatched."""
    from audiobench.distributed import is_helper_process, join, on_main
    from audiobench.external import import_images

    if data is None:
        raise AudiobenchError("--images needs --data: the dataset whose samples the images show")
    processes, _ = join(device)  # the launch's processes, joined as `evaluate` will join them
    summary = on_main(processes, lambda: import_images(images, data, split, out, name, profile))
    if not is_helper_process():
        console.print(f"{summary.imported} images imported into {escape(str(summary.run_dir))}")
        for what, items in (
            ("samples without an image", summary.missing),
            ("unreadable images", summary.unreadable),
            ("images matching no sample", summary.unmatched),
        ):
            if items:
                listed = ", ".join(items[:10]) + (", ..." if len(items) > 10 else "")
                console.print(f"{len(items)} {what}: {escape(listed)}")
    return summary.run_dir, profile


@app.command("verify")
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `audiobench run`.")],
    recompute: Annotated[
        bool,
        typer.Option("--recompute", help="Also evaluate a copy from scratch and compare."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a run's images, metrics and weights against the hashes it recorded.

    Exit code 1 when anything drifted. Example: audiobench verify runs/sd-text-test-tiny-seed0
    """
    from dataclasses import asdict

    from audiobench.verify import verify as verify_run

    findings = verify_run(run_dir, recompute)
    drift = [f for f in findings if f.kind == "drift"]
    if as_json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        table = Table("", "what", "finding", title=f"{run_dir}")
        for finding in findings:
            table.add_row(finding.kind, finding.subject, finding.message)
        if findings:
            console.print(table)
        notes = len(findings) - len(drift)
        if drift:
            console.print(f"{len(drift)} drifted")
        elif notes:
            console.print(f"consistent where checkable ({notes} not checkable, listed above)")
        else:
            console.print("consistent: images, metrics, dataset and weights match")
    if drift:
        raise typer.Exit(1)


@app.command("distance")
def distance(
    dir_a: Annotated[Path, typer.Argument(help="First image folder.")],
    dir_b: Annotated[Path, typer.Argument(help="Second image folder.")],
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            help="Comma-separated metrics of two image sets (default: every registered one: "
            "`audiobench metrics` lists them).",
        ),
    ] = None,
    profile: ProfileOption = "paper",
    device: Annotated[
        str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    ] = "auto",
    weights_dir: WeightsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Distances between two image folders as whole sets (FID and KID equal torch-fidelity's).

    Example: audiobench distance runs/sd-text-test-paper-seed0/images frames/ --metrics fid,kid
    """
    _print_distances(dir_a, dir_b, metrics, profile, device, weights_dir, as_json)


@app.command("fid")
def fid(
    dir_a: Annotated[Path, typer.Argument(help="First image folder.")],
    dir_b: Annotated[Path, typer.Argument(help="Second image folder.")],
    profile: ProfileOption = "paper",
    device: Annotated[
        str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    ] = "auto",
    weights_dir: WeightsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """FID between two image folders: `audiobench distance A B --metrics fid`.

    Example: audiobench fid runs/sd-text-test-paper-seed0/images reference_frames/
    """
    _print_distances(dir_a, dir_b, "fid", profile, device, weights_dir, as_json)


def _print_distances(
    dir_a: Path,
    dir_b: Path,
    metrics: str | None,
    profile: str,
    device: str,
    weights_dir: Path | None,
    as_json: bool,
) -> None:
    from audiobench.metrics.plugin import parse_metrics, set_metrics
    from audiobench.scoring import distance as set_distance

    results = set_distance(
        dir_a,
        dir_b,
        parse_metrics(metrics) if metrics else set_metrics(),
        profile=profile,
        device=device,
        weights_dir=weights_dir,
    )
    if as_json:
        print(json.dumps({"profile": profile, "metrics": results}, indent=2, sort_keys=True))
        return
    for name, result in results.items():
        low, high = result["ci95"]
        console.print(f"{name.upper()} {result['value']:.6g} (95% CI {low:.6g} - {high:.6g})")


@app.command("report")
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Evaluated run directories.")],
    output_format: Annotated[
        str, typer.Option("--format", help="markdown, latex or html.")
    ] = "markdown",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    with_ci: Annotated[bool, typer.Option("--ci", help="Add 95% intervals.")] = False,
    leaderboard: Annotated[
        Path | None, typer.Option("--leaderboard", help="Also show this board's paper rows.")
    ] = None,
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="VGGSound classes.csv: adds per-supercategory tables."),
    ] = None,
    metrics: MetricsOption = None,
) -> None:
    """Table 1 from evaluated runs (metrics are read from metrics.json, never recomputed).

    HTML adds a qualitative grid (methods x the same samples), spectrogram/image pairs and
    per-class (and, with --classes, per-supercategory) tables; figures are also saved as PNG
    beside --out.
    Example: audiobench report runs/* --format latex --out table1.tex
    """
    from audiobench import report as reports
    from audiobench.store import atomic_write_bytes

    if output_format not in reports.FORMATS:
        raise AudiobenchError(f"--format must be one of {', '.join(reports.FORMATS)}")
    from audiobench.metrics.plugin import parse_metrics

    columns = list(parse_metrics(metrics))
    rows = reports.load_rows(run_dirs)
    if leaderboard is not None:
        from audiobench.leaderboard import load

        rows += reports.published_rows(load(leaderboard))
    if output_format == "markdown":
        text = reports.markdown(rows, with_ci, columns)
    elif output_format == "latex":
        text = reports.latex(rows, with_ci, columns)
    else:
        text = _html_report(reports, rows, with_ci, out, classes, columns)
    if out is None:
        print(text, end="")
    else:
        atomic_write_bytes(out, text.encode("utf-8"))
        console.print(f"report written: {out}")


def _html_report(
    reports, rows, with_ci: bool, out: Path | None, classes: Path | None, columns: list[str]
) -> str:
    import warnings

    from audiobench.data.vggsound import read_classes
    from audiobench.store import atomic_write_bytes

    runs = [row for row in rows if row.run_dir is not None]
    figures = {"Qualitative comparison": reports.qualitative_grid(runs)}
    for row in runs:
        if row.conditioning == "audio":
            figures[f"Audio and image: {row.name}"] = reports.spectrogram_pairs(row)
    if out is not None:
        for index, data in enumerate(figures.values()):
            atomic_write_bytes(out.with_name(f"{out.stem}_figure{index + 1}.png"), data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        breakdown = reports.per_class(runs, read_classes(classes) if classes else None)
    for warning in caught:
        print(f"warning: {classes}: {warning.message}", file=sys.stderr)
    tables = {
        "Per class (%)": breakdown["class"],
        "Per supercategory (%)": breakdown["supercategory"],
    }
    return reports.html_report(rows, with_ci, figures, tables, columns)


@leaderboard_app.command("add")
def leaderboard_add(
    run_dirs: Annotated[list[Path], typer.Argument(help="Evaluated run directories.")],
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="Leaderboard JSON to add to; a new file starts with the paper's rows.",
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Accept tiny-profile runs.")] = False,
) -> None:
    """Add evaluated runs to a leaderboard file (tiny-profile runs are refused unless --force).

    The board shipped with the package is never written: name the file to add to (in a source
    checkout, leaderboards/vggsound.json). A run already on the board (same results digest) is
    not added again; a run with new results is a new row beside the old ones.

    Example: audiobench leaderboard add runs/audiotoken-test-paper-seed0 --file board.json
    """
    from audiobench.leaderboard import add_runs

    addition = add_runs(file, run_dirs, force)
    for note in addition.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = len(addition.board["rows"])
    console.print(f"{escape(str(file))}: {rows} rows ({addition.added} added)", highlight=False)


@leaderboard_app.command("render")
def leaderboard_render(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Leaderboard JSON [default: the board shipped with audiobench]."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Markdown file to write [default: stdout].")
    ] = None,
) -> None:
    """The leaderboard as markdown, with each row's difference from the paper's.

    Example: audiobench leaderboard render --out leaderboard.md
    """
    from audiobench.leaderboard import load, packaged_board, render, write_markdown

    source = file or packaged_board()
    board = load(source)
    if out is None:
        sys.stdout.write(render(board, source))
        return
    write_markdown(board, out, source)
    console.print(f"leaderboard written: {out}")


@human_app.command("export")
def human_export(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to rate.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the sheet, images and key.")],
    output_format: Annotated[
        str, typer.Option("--format", help="html, csv, mturk or labelstudio.")
    ] = "html",
    per_method: Annotated[
        int | None,
        typer.Option(
            "--per-method",
            help="Samples per method [default: 15, or all the runs share when fewer].",
            callback=AT_LEAST_1,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of sampling and shuffling.", callback=NON_NEGATIVE),
    ] = 0,
    attention_checks: Annotated[
        int,
        typer.Option(
            "--attention-checks",
            help="Frames shown with true and wrong labels.",
            callback=NON_NEGATIVE,
        ),
    ] = 2,
    image_url_prefix: Annotated[
        str | None,
        typer.Option(
            "--image-url-prefix",
            help="http(s) URL the images/ folder is served from, written into the csv, mturk "
            "and labelstudio sheets [default: local images/ paths; labelstudio embeds them].",
        ),
    ] = None,
) -> None:
    """Blinded, shuffled rating sheets over the same samples for every method.

    MTurk loads images by URL: upload OUT/images/ to a web host and pass its URL as
    --image-url-prefix. Label Studio's tasks embed their images unless it is given.

    Example: audiobench human-eval export runs/* --out sheets --format html
    """
    from audiobench.human_eval.export import build_items, export, hosting_note, per_method_note

    items = build_items(run_dirs, per_method, seed, attention_checks)
    sheet = export(items, out, output_format, image_url_prefix)
    for note in (
        per_method_note(items, per_method),
        hosting_note(output_format, image_url_prefix, out),
    ):
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
    console.print(f"{len(items)} items: {sheet} (key: {out / 'key.csv'})")


@human_app.command("ingest")
def human_ingest(
    responses: Annotated[list[Path], typer.Argument(help="Response files of any format.")],
    key: Annotated[Path, typer.Option("--key", help="key.csv written by export.")],
    out: Annotated[Path, typer.Option("--out", help="Tidy ratings CSV to write.")],
    max_failed_checks: Annotated[
        int,
        typer.Option(
            "--max-failed-checks",
            help="Failed attention checks a rater may have.",
            callback=NON_NEGATIVE,
        ),
    ] = 0,
) -> None:
    """Responses (form CSV, sheet CSV, MTurk results, Label Studio exports) into one table.

    Label Studio: its JSON, JSON_MIN or CSV export. A file with no rating in it is an error.

    Example: audiobench human-eval ingest ratings-*.csv --key sheets/key.csv --out ratings.csv
    """
    from audiobench.human_eval.export import csv_bytes
    from audiobench.human_eval.ingest import ingest
    from audiobench.store import atomic_write_bytes

    result = ingest(responses, key, max_failed_checks)
    atomic_write_bytes(out, csv_bytes(result.ratings))
    dropped = ", ".join(result.dropped_raters) or "none"
    console.print(
        f"{out}: {len(result.ratings)} ratings; raters dropped by attention checks: {dropped}"
    )


@human_app.command("analyze")
def human_analyze(
    ratings: Annotated[Path, typer.Argument(help="Ratings CSV written by ingest.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the table and plot.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Per method mean +/- std and cluster intervals; paired tests; mixed model; agreement.

    Example: audiobench human-eval analyze ratings.csv --out analysis
    """
    from audiobench.human_eval.analyze import analyze, plot, report, table
    from audiobench.human_eval.ingest import read_ratings
    from audiobench.store import atomic_write_bytes, atomic_write_json, make_directory

    frame = read_ratings(ratings)
    result = analyze(frame)
    if out is not None:
        make_directory(out)
        atomic_write_json(out / "analysis.json", result)
        atomic_write_bytes(out / "report.md", report(result).encode())
        atomic_write_bytes(out / "table.md", table(result).encode())
        atomic_write_bytes(out / "table.tex", table(result, latex=True).encode())
        atomic_write_bytes(out / "ratings.png", plot(frame))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result), end="")


@human_app.command("plan")
def human_plan(
    pilot: Annotated[
        Path | None,
        typer.Option("--pilot", help="Pilot ratings CSV; its mixed model gives the components."),
    ] = None,
    items: Annotated[
        int,
        typer.Option(
            "--items", help="Samples, each rated under every method.", callback=AT_LEAST_2
        ),
    ] = 15,
    raters: Annotated[
        int, typer.Option("--raters", help="Raters, each rating every item.", callback=AT_LEAST_2)
    ] = 17,
    methods: Annotated[
        int, typer.Option("--methods", help="Methods compared.", callback=AT_LEAST_2)
    ] = 3,
    target_width: Annotated[
        float | None,
        typer.Option(
            "--target-width",
            help="Width of a method's 95% interval to suggest the cheapest design for.",
            callback=POSITIVE,
        ),
    ] = None,
    difference: Annotated[
        float,
        typer.Option(
            "--difference",
            help="Difference between two methods (rating points) to find.",
            callback=NON_NEGATIVE,
        ),
    ] = 0.5,
    rater_sd: Annotated[
        float | None,
        typer.Option(
            "--rater-sd", help="SD of the rater effect (without --pilot).", callback=NON_NEGATIVE
        ),
    ] = None,
    sample_sd: Annotated[
        float | None,
        typer.Option(
            "--sample-sd", help="SD of the sample effect (without --pilot).", callback=NON_NEGATIVE
        ),
    ] = None,
    residual_sd: Annotated[
        float | None,
        typer.Option(
            "--residual-sd", help="SD of the residual (without --pilot).", callback=NON_NEGATIVE
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for plan.md, plan.json and plan.png.")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulated studies.", callback=NON_NEGATIVE)
    ] = 0,
) -> None:
    """Interval width and power of a study design, from a pilot or stated variance components.

    Example: audiobench human-eval plan --pilot pilot.csv --target-width 0.5 --out plan
    """
    from audiobench.human_eval.plan import Design, markdown, plan, plot, variance_components
    from audiobench.store import atomic_write_bytes, atomic_write_json, make_directory

    components = variance_components(pilot, rater_sd, sample_sd, residual_sd)
    result = plan(components, Design(raters, items, methods), difference, target_width, seed)
    text = markdown(result)
    if out is not None:
        make_directory(out)
        atomic_write_json(out / "plan.json", result)
        atomic_write_bytes(out / "plan.md", text.encode())
        atomic_write_bytes(out / "plan.png", plot(result))
    print(text, end="")


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise AudiobenchError(f"--set takes KEY=VALUE, not {pair!r}")
        options[key] = value
    return options


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors (ours and click's) become one line on stderr and exit code
    2, Ctrl-C one line and exit code 130 (128 + SIGINT, as shells report it)."""
    try:
        code = app(args=argv, prog_name="audiobench", standalone_mode=False)
    except AudiobenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except typer.TyperException as error:  # click's usage errors
        line = usage_error_line(error)
        if line is not None:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(error.exit_code)
    except Interrupted as interruption:
        hint = f": {interruption.hint}" if interruption.hint else ""
        print(f"interrupted{hint}", file=sys.stderr)
        sys.exit(130)
    if code:  # typer.Exit(code) of a command, returned rather than raised outside standalone mode
        sys.exit(code)
