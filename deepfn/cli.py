"""The ``deepfn`` command line: one command per pipeline stage, plus tools.

    deepfn --help
    deepfn params                      # the resolved, validated settings of params.yaml
    deepfn synthesize                  # a stage, with dvc.yaml's paths as defaults
    deepfn normalize --subject F001    # ... every stage of dvc.yaml has its command
    deepfn stats --tracking-uri http://127.0.0.1:5000 --out reports
    deepfn tune classifier --study NAME --n-trials 20
    deepfn fanout normalize            # compute.engine: ray: the stale normalizers on Ray
    deepfn preview --out reports/preview.png
    deepfn import bp4d ROOT --metadata meta.csv --out data/raw

A stage command and ``pipelines/<stage>.py`` (what ``dvc repro`` runs) are the same call,
:func:`deepfn.stage.run_stage`: same settings, outputs, summary line and exit codes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deepfn.stage import Stage, configure_threads, exit_code, run_stage

if TYPE_CHECKING:
    from deepfn.config.settings import Settings

app = typer.Typer(help=__doc__.split("\n\n")[0] + "\n\nRun `deepfn COMMAND --help` for details.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
import_app = typer.Typer(help="Import licensed BP4D / DISFA copies into the corpus format.",
                         no_args_is_help=True)
tune_app = typer.Typer(help="The tune stage, or a study of one target (`tune classifier`, "
                       "`tune normalizer`) with Optuna, tracked in MLflow.")
fanout_app = typer.Typer(help="Run a stage's stale items as Ray tasks (compute.engine: ray; "
                         "docs/cluster.md).", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(tune_app, name="tune")
app.add_typer(fanout_app, name="fanout")

Params = Annotated[Path, typer.Option("--params", help="params file")]


def _cli(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The stages' error path for the other commands: one ``error:`` line and exit code 2 for
    user errors, 130 on Ctrl-C (:func:`deepfn.stage.exit_code`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        code = exit_code(lambda: fn(*args, **kwargs))
        if code:
            raise typer.Exit(code)

    return wrapper


def _settings(params: Path, overrides: dict[str, Any] | None = None) -> Settings:
    from deepfn.config import load_settings

    return load_settings(params, overrides)


@app.command("smoke-project")
@_cli
def smoke_project(dest: Annotated[Path, typer.Argument(help="directory to (re)create")] = Path(
        ".smoke")) -> None:
    """Copy the pipeline into DEST with the smoke profile and roster (then: cd DEST && dvc repro).

    Your workspace's outputs, dvc.lock and MLflow store are left alone.
    """
    from deepfn.scaffold import write_smoke_project

    out = write_smoke_project(dest, dvc=str(Path(sys.executable).with_name("dvc")))
    typer.echo(f"smoke project: {out}  (cd {out} && dvc repro)")


@app.command("params")
@_cli
def params_cmd(params: Params = Path("params.yaml")) -> None:
    """Validate params.yaml and print the resolved settings (profile values filled in)."""
    s = _settings(params)
    typer.echo(json.dumps(s.model_dump(mode="json"), indent=2))


# ------------------------------------------------------------------ the pipeline's stages
# One command per dvc.yaml stage, same name, same paths (dvc.yaml's as defaults), run through
# deepfn.stage.run_stage exactly as pipelines/<stage>.py runs it.
WorkDir = Annotated[Path | None, typer.Option(
    help="resumable checkpoints, outside DVC outs (default: .deepfn/work/<stage>)")]


def _stage(stage: Stage, params: Path, overrides: dict[str, Any] | None = None,
           **paths: Any) -> None:
    code = run_stage(stage, params, overrides=overrides, **paths)
    if code:
        raise typer.Exit(code)


def synthesize(
    out: Annotated[Path, typer.Option(help="corpus directory to write")] = Path("data/raw"),
    params: Params = Path("params.yaml"),
    seed: Annotated[int | None, typer.Option(help="override synthesize.seed")] = None,
    identity_strength: Annotated[float | None, typer.Option(
        help="override synthesize.identity_strength (0 = shared identity)")] = None,
) -> None:
    """Build the raw corpus: synthetic FACS faces, or licensed BP4D/DISFA (synthesize.source).

    A licensed import must hold exactly synthesize.subjects (the roster dvc.yaml uses)."""
    from deepfn.data.synthesize import SYNTHESIZE

    over = {k: v for k, v in {"synthesize.seed": seed,
                              "synthesize.identity_strength": identity_strength}.items()
            if v is not None}
    _stage(SYNTHESIZE, params, over, out=out)


app.command("synthesize")(synthesize)
app.command("synth", hidden=True)(synthesize)  # the command's earlier name


@app.command()
def preprocess(raw: Annotated[Path, typer.Option(help="raw corpus")] = Path("data/raw"),
               out: Annotated[Path, typer.Option(help="output directory")] = Path(
                   "data/preprocessed"),
               params: Params = Path("params.yaml")) -> None:
    """Histogram-equalize and resize the corpus to the AE and classifier resolutions."""
    from deepfn.data.preprocess import PREPROCESS

    _stage(PREPROCESS, params, raw=raw, out=out)


@app.command()
def template(data: Annotated[Path, typer.Option(help="preprocessed AE-resolution corpus")
                             ] = Path("data/preprocessed/ae"),
             out: Annotated[Path, typer.Option(help="template directory")] = Path(
                 "data/template"),
             params: Params = Path("params.yaml")) -> None:
    """Pick the template subject by the paper's rule (§3.2)."""
    from deepfn.data.template import TEMPLATE

    _stage(TEMPLATE, params, data=data, out=out)


@app.command()
def pretrain(template: Annotated[Path, typer.Option(help="template corpus dir")] = Path(
                 "data/template"),
             out: Annotated[Path, typer.Option(help="model file to write")] = Path(
                 "models/pretrained.pt"),
             params: Params = Path("params.yaml"), work_dir: WorkDir = None) -> None:
    """Warm start: train E and D^y once on the template (pretrain.iterations; 0 = seeded init)."""
    from deepfn.normalizer.stage import PRETRAIN

    _stage(PRETRAIN, params, template=template, out=out, work_dir=work_dir)


@app.command()
def normalize(
    subject: Annotated[str, typer.Option(help="subject id, e.g. F001")],
    data: Annotated[Path, typer.Option(help="AE-resolution corpus")] = Path(
        "data/preprocessed/ae"),
    template: Annotated[Path, typer.Option(help="template corpus dir")] = Path("data/template"),
    pretrained: Annotated[Path, typer.Option(help="warm start")] = Path("models/pretrained.pt"),
    out: Annotated[Path | None, typer.Option(
        help="model file to write (default: models/normalizers/<subject>.pt)")] = None,
    params: Params = Path("params.yaml"), work_dir: WorkDir = None,
) -> None:
    """Train one subject's DeepFN autoencoder (Eq. 1); resumes from its last checkpoint."""
    from deepfn.normalizer.stage import NORMALIZE

    _stage(NORMALIZE, params, subject=subject, data=data, template=template,
           pretrained=pretrained, out=out, work_dir=work_dir)


@fanout_app.command("normalize")
@_cli
def fanout_normalize(
    params: Params = Path("params.yaml"),
    upstream: Annotated[bool, typer.Option(
        help="run `dvc repro pretrain` first (the normalizers' inputs)")] = True,
) -> None:
    """Every stale normalize@<subject> stage as one Ray task on compute.address, recorded in
    MLflow and dvc.lock as `dvc repro` would; then run `dvc repro` for the rest."""
    from deepfn.compute.fanout import fanout_normalize as run

    summary = run(_settings(params), Path("."), upstream=upstream, echo=typer.echo)
    if summary.done:
        typer.echo(f"fanout normalize: {len(summary.done)} subjects in {summary.seconds:.1f} s "
                   f"on {summary.cluster}, {summary.logged} MLflow runs logged; next: dvc repro")


@app.command()
def transfer(
    data: Annotated[Path, typer.Option(help="AE-resolution corpus")] = Path(
        "data/preprocessed/ae"),
    models: Annotated[Path, typer.Option(help="normalizers dir")] = Path("models/normalizers"),
    out: Annotated[Path, typer.Option(help="normalized corpora to write (<out>/<method>)")] = Path(
        "data/normalized"),
    reports: Annotated[Path, typer.Option(help="diagnostics dir")] = Path(
        "reports/normalization"),
    params: Params = Path("params.yaml"),
) -> None:
    """Normalize every subject through its own normalizer (Eq. 2) + identity/expression probes."""
    from deepfn.normalizer.transfer import TRANSFER

    _stage(TRANSFER, params, data=data, models=models, out=out, reports=reports)


@app.command()
def experiments(
    original: Annotated[Path, typer.Option(help="original corpus")] = Path(
        "data/preprocessed/clf"),
    normalized: Annotated[Path, typer.Option(help="normalized corpora (<dir>/<method>)")] = Path(
        "data/normalized"),
    template: Annotated[Path, typer.Option(help="template.json")] = Path(
        "data/template/template.json"),
    out: Annotated[Path, typer.Option(help="run manifest to write")] = Path(
        "results/experiments.json"),
    params: Params = Path("params.yaml"),
) -> None:
    """LeNet-5 over every group split, dependent vs independent, original vs DeepFN.

    Each model is an MLflow run in `deepfn-au`; finished runs are skipped on a rerun."""
    from deepfn.au.stage import EXPERIMENTS

    _stage(EXPERIMENTS, params, original=original, normalized=normalized, template=template,
           out=out)


@app.command()
def stats(
    manifest: Annotated[Path | None, typer.Option(
        help="experiments manifest; without it every finished deepfn-au model run is used")
    ] = Path("results/experiments.json"),
    out: Annotated[Path, typer.Option(help="output directory")] = Path("reports"),
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow store or server, e.g. http://127.0.0.1:5000 (default: tracking.uri)")
    ] = None,
    filter: Annotated[str | None, typer.Option(
        help="MLflow filter string, e.g. \"tags.profile = 'default'\" (without --manifest)")
    ] = None,
    params: Params = Path("params.yaml"),
) -> None:
    """Table 5, the t-tests and Figs. 4-7 from runs pulled out of the MLflow store."""
    from deepfn.stats.stage import STATS

    if filter and manifest == Path("results/experiments.json"):
        manifest = None
    # an explicit URI wins over MLFLOW_TRACKING_URI and tracking.uri (deepfn.tracking.Store)
    _stage(STATS, params, manifest=manifest, out=out, uri=tracking_uri, filter=filter)

# ------------------------------------------------------------------ tools
@app.command()
@_cli
def preview(
    out: Annotated[Path, typer.Option(help="contact sheet PNG")] = Path("reports/preview.png"),
    strip: Annotated[Path, typer.Option(help="consecutive-frames PNG")] = Path(
        "reports/preview_strip.png"),
    seed: int = 0,
    identity_strength: float = 1.0,
) -> None:
    """Write a contact sheet (people x AUs at high intensity) and a strip of frames."""
    from deepfn.data.synth import write_preview, write_strip

    write_preview(out, seed=seed, identity_strength=identity_strength)
    write_strip(strip, seed=seed)
    typer.echo(f"wrote {out} and {strip}")


def _import(dataset: str, root: Path, metadata: Path, out: Path, size: int,
            detector: str) -> None:
    from deepfn.data.importers import import_corpus

    report = import_corpus(out, bp4d_root=root if dataset == "bp4d" else None,
                           disfa_root=root if dataset == "disfa" else None,
                           metadata_csv=metadata, image_size=size, detector=detector)
    typer.echo(json.dumps(report.to_dict().get("totals", {}), indent=2))


@import_app.command("bp4d")
@_cli
def import_bp4d(
    root: Annotated[Path, typer.Argument(help="BP4D root: <root>/F001/T1/2440.jpg, AUCoding/")],
    metadata: Annotated[Path, typer.Option(help="CSV subject,gender,skin_type")],
    out: Path = Path("data/raw"),
    size: int = 128,
    detector: Annotated[str, typer.Option(help="haar | none (pre-cropped)")] = "haar",
) -> None:
    """Import a licensed BP4D copy into the corpus format."""
    _import("bp4d", root, metadata, out, size, detector)


@import_app.command("disfa")
@_cli
def import_disfa(
    root: Annotated[Path, typer.Argument(
        help="DISFA root: Videos_LeftCamera/, ActionUnit_Labels/")],
    metadata: Annotated[Path, typer.Option(help="CSV subject,gender,skin_type")],
    out: Path = Path("data/raw"),
    size: int = 128,
    detector: Annotated[str, typer.Option(help="haar | none (pre-cropped)")] = "haar",
) -> None:
    """Import a licensed DISFA copy into the corpus format."""
    _import("disfa", root, metadata, out, size, detector)


# ------------------------------------------------------------------ tune (deepfn.tuning)
Study = Annotated[str | None, typer.Option(help="study name (default: tune.study, or "
                                           "deepfn-<target> when tune.target differs)")]
NTrials = Annotated[int | None, typer.Option(
    "--n-trials", min=1, help="finished (complete + pruned) trials the study should end with, "
    "over all workers and reruns (default: tune.n_trials)")]
Storage = Annotated[str | None, typer.Option(
    help="journal file path (default .optuna/journal.log, several workers on one machine) or "
    "postgresql://user@host/db (several machines)")]
TuneOut = Annotated[Path, typer.Option("--out", help="plots, best params, summary")]
Report = Annotated[bool, typer.Option(help="write plots + best params at the end (extra "
                                      "workers of a study can skip it)")]
Engine = Annotated[str | None, typer.Option(
    help="local (this process is one worker) | ray (--workers Optuna workers as Ray tasks on "
    "compute.address; docs/tuning.md); default: compute.engine")]
Workers = Annotated[int, typer.Option(
    min=0, help="with --engine ray: Optuna workers (0 = one per CPU, or GPU, of the cluster)")]


@tune_app.callback(invoke_without_command=True)
def tune_stage(
    ctx: typer.Context,
    original: Annotated[Path, typer.Option(help="classifier corpus")] = Path(
        "data/preprocessed/clf"),
    normalized: Annotated[Path | None, typer.Option(help="normalized corpus")] = Path(
        "data/normalized"),
    template: Annotated[Path, typer.Option(help="template.json")] = Path(
        "data/template/template.json"),
    ae: Annotated[Path | None, typer.Option(
        help="autoencoder corpus for the normalizer (default: <original>/../ae)")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("reports/tuning"),
    params: Params = Path("params.yaml"),
) -> None:
    """Without a subcommand: the tune stage (a no-op unless tune.enabled, then a study of
    tune.target).  `deepfn tune classifier|normalizer --help`: a study with its own options."""
    if ctx.invoked_subcommand is None:
        from deepfn.tuning.stage import TUNE

        _stage(TUNE, params, original=original, normalized=normalized, template=template,
               ae=ae, out=out)


def _tune(target: str, params: Path, **kw: Any) -> None:
    from deepfn.tuning import TuneData, tune

    data = TuneData(original=kw.pop("original"), template=kw.pop("template"),
                    normalized=kw.pop("normalized", None), ae=kw.pop("ae", None))
    settings = _settings(params)
    configure_threads()
    tune(settings, target=target, data=data, echo=typer.echo, **kw)


@tune_app.command("classifier")
@_cli
def tune_classifier(
    study: Study = None, n_trials: NTrials = None, storage: Storage = None,
    params: Params = Path("params.yaml"),
    original: Annotated[Path, typer.Option(help="classifier corpus")] = Path(
        "data/preprocessed/clf"),
    normalized: Annotated[Path, typer.Option(help="DeepFN-normalized corpus (used if present)")
                          ] = Path("data/normalized"),
    template: Annotated[Path, typer.Option(help="template.json")] = Path(
        "data/template/template.json"),
    out: TuneOut = Path("reports/tuning"),
    splits: Annotated[int, typer.Option(min=1, help="protocol repetitions per trial")] = 2,
    report: Report = True, engine: Engine = None, workers: Workers = 0,
) -> None:
    """Tune experiments.{lr,beta1,batch_size,epochs,weight_decay} on validation subjects."""
    _tune("classifier", params, study_name=study, n_trials=n_trials, storage=storage,
          original=original, normalized=normalized, template=template, out_dir=out,
          splits=splits, report=report, engine=engine, workers=workers)


@tune_app.command("normalizer")
@_cli
def tune_normalizer(
    study: Study = None, n_trials: NTrials = None, storage: Storage = None,
    params: Params = Path("params.yaml"),
    original: Annotated[Path, typer.Option(help="classifier corpus (labels, subjects)")] = Path(
        "data/preprocessed/clf"),
    ae: Annotated[Path, typer.Option(help="autoencoder-resolution corpus")] = Path(
        "data/preprocessed/ae"),
    template: Annotated[Path, typer.Option(help="template.json")] = Path(
        "data/template/template.json"),
    out: TuneOut = Path("reports/tuning"),
    report: Report = True, engine: Engine = None, workers: Workers = 0,
) -> None:
    """Tune normalize.{lr,warp_strength,iterations,width} + warm start by a downstream proxy."""
    _tune("normalizer", params, study_name=study, n_trials=n_trials, storage=storage,
          original=original, ae=ae, template=template, out_dir=out, report=report,
          engine=engine, workers=workers)
