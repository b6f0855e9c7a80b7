"""The ``deepfn`` command line: one subcommand per pipeline stage plus tools.

    deepfn --help
    deepfn params                      # the resolved, validated settings of params.yaml
    deepfn synth --out data/raw        # render the synthetic FACS corpus
    deepfn preview --out reports/preview.png
    deepfn import bp4d ROOT --metadata meta.csv --out data/raw
    deepfn stats --tracking-uri sqlite:///mlruns/mlflow.db --out reports
    deepfn tune classifier --study NAME --n-trials 20

Inside the pipeline the same functions run through ``dvc repro`` (see dvc.yaml).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from deepfn.errors import DeepFNError

app = typer.Typer(help=__doc__.split("\n\n")[0] + "\n\nRun `deepfn COMMAND --help` for details.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
import_app = typer.Typer(help="Import licensed BP4D / DISFA copies into the corpus format.",
                         no_args_is_help=True)
tune_app = typer.Typer(help="Hyperparameter studies with Optuna (tracked in MLflow).",
                       no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(tune_app, name="tune")

Params = Annotated[Path, typer.Option("--params", help="params file")]


def _cli(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One ``error:`` line and exit code 2 for user errors; 130 on Ctrl-C."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeepFNError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: rerun the same command to resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _settings(params: Path, overrides: dict[str, Any] | None = None):
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


@app.command()
@_cli
def synth(
    out: Annotated[Path, typer.Option(help="corpus directory to write")] = Path("data/raw"),
    params: Params = Path("params.yaml"),
    seed: Annotated[int | None, typer.Option(help="override synthesize.seed")] = None,
    identity_strength: Annotated[float | None, typer.Option(
        help="override synthesize.identity_strength (0 = shared identity)")] = None,
) -> None:
    """Render the synthetic FACS face corpus (BP4D-like + DISFA-like) for the params roster."""
    from deepfn.data.synth import synthesize_corpus

    over = {k: v for k, v in {"synthesize.seed": seed,
                              "synthesize.identity_strength": identity_strength}.items()
            if v is not None}
    cfg = _settings(params, over).synthesize
    table = synthesize_corpus(out, cfg.subjects, seed=cfg.seed,
                              identity_strength=cfg.identity_strength,
                              frames_per_sequence=cfg.frames_per_sequence,
                              image_size=cfg.image_size)
    typer.echo(f"wrote {len(table)} subjects to {out}")


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

    roots = {"bp4d_root": root if dataset == "bp4d" else None,
             "disfa_root": root if dataset == "disfa" else None}
    report = import_corpus(out, metadata_csv=metadata, image_size=size, detector=detector,
                           **roots)
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


@app.command()
@_cli
def preprocess(raw: Path = Path("data/raw"), out: Path = Path("data/preprocessed"),
               params: Params = Path("params.yaml")) -> None:
    """Histogram-equalize and resize the corpus to the AE and classifier resolutions."""
    from deepfn.data.preprocess import preprocess_corpus

    info = preprocess_corpus(raw, out, _settings(params).preprocess)
    typer.echo(f"preprocessed {info['subjects']} subjects, {info['frames']} frames -> {out}")


@app.command()
@_cli
def template(data: Path = Path("data/preprocessed/ae"), out: Path = Path("data/template"),
             params: Params = Path("params.yaml")) -> None:
    """Pick the template subject by the paper's rule (§3.2)."""
    from deepfn.data.template import select_template

    r = select_template(data, out, _settings(params).template)
    typer.echo(f"template: {r['subject']} (median activation count {r['median_count']:.1f})")


@app.command()
@_cli
def pretrain(template: Path = Path("data/template"), out: Path = Path("models/pretrained.pt"),
             params: Params = Path("params.yaml")) -> None:
    """Warm start: train E and D^y once on the template (pretrain.iterations; 0 = seeded init)."""
    from deepfn.normalizer.jobs import run_pretrain

    info = run_pretrain(_settings(params), template_dir=template, out=out)
    typer.echo(f"pretrained: {info.get('path', out)}")


@app.command()
@_cli
def normalize(
    subject: Annotated[str, typer.Argument(help="subject id, e.g. F001")],
    data: Path = Path("data/preprocessed/ae"), template: Path = Path("data/template"),
    pretrained: Path = Path("models/pretrained.pt"),
    out: Annotated[Path | None, typer.Option(help="default models/normalizers/<subject>.pt")
                   ] = None,
    params: Params = Path("params.yaml"),
) -> None:
    """Train one subject's DeepFN autoencoder (Eq. 1); resumes from its last checkpoint."""
    from deepfn.normalizer.jobs import run_normalize

    info = run_normalize(_settings(params), subject=subject, data_dir=data,
                         template_dir=template, pretrained=pretrained,
                         out=out or Path(f"models/normalizers/{subject}.pt"))
    typer.echo(f"normalizer {subject}: {info['path']} ({info['iterations']} iterations)")


@app.command()
@_cli
def transfer(data: Path = Path("data/preprocessed/ae"), models: Path = Path("models/normalizers"),
             out: Path = Path("data/normalized"),
             reports: Path = Path("reports/normalization"),
             params: Params = Path("params.yaml")) -> None:
    """Normalize every subject through its own normalizer (Eq. 2) + identity/expression probes."""
    from deepfn.normalizer.transfer import run_transfer

    m = run_transfer(_settings(params), data_dir=data, models_dir=models, out_dir=out,
                     reports_dir=reports)
    ident = m["identity_accuracy"]
    typer.echo(f"identity probe {ident['before']:.2f} -> {ident['after']:.2f} "
               f"(chance {ident['chance']:.2f}); diagnostics in {reports}")


@app.command()
@_cli
def experiments(
    original: Path = Path("data/preprocessed/clf"), normalized: Path = Path("data/normalized"),
    template: Path = Path("data/template/template.json"),
    out: Path = Path("results/experiments.json"), params: Params = Path("params.yaml"),
) -> None:
    """LeNet-5 over every group split, dependent vs independent, original vs DeepFN.

    Each model is an MLflow run in `deepfn-au`; finished runs are skipped on a rerun."""
    from deepfn.au.experiments import run_experiments

    s = _settings(params)
    m = run_experiments(s, original, normalized, template, out)
    typer.echo(f"{len(m['runs'])} runs -> {out}")


@app.command()
@_cli
def stats(
    manifest: Annotated[Path | None, typer.Option(
        help="experiments manifest; without it every finished deepfn-au model run is used")
    ] = Path("results/experiments.json"),
    out: Path = Path("reports"),
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow store or server, e.g. http://127.0.0.1:5000 (default: tracking.uri)")
    ] = None,
    filter: Annotated[str | None, typer.Option(
        help="MLflow filter string, e.g. \"tags.profile = 'default'\" (without --manifest)")
    ] = None,
    params: Params = Path("params.yaml"),
) -> None:
    """Table 5, the t-tests and Figs. 4-7 from runs pulled out of the MLflow store."""
    from deepfn.stats import run_stats

    s = _settings(params)
    if filter and manifest == Path("results/experiments.json"):
        manifest = None
    r = run_stats(manifest, out, tracking_uri, s, filter)  # explicit URI > env > tracking.uri
    typer.echo(f"{r['n_runs']} runs, {r['n_observations']} participant observations -> "
               f"{out}/report.md")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


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


def _tune(target: str, params: Path, **kw: Any) -> None:
    from deepfn.tuning import TuneData, tune

    data = TuneData(original=kw.pop("original"), template=kw.pop("template"),
                    normalized=kw.pop("normalized", None), ae=kw.pop("ae", None))
    tune(_settings(params), target=target, data=data, echo=typer.echo, **kw)


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
    report: Report = True,
) -> None:
    """Tune experiments.{lr,beta1,batch_size,epochs,weight_decay} on validation subjects."""
    _tune("classifier", params, study_name=study, n_trials=n_trials, storage=storage,
          original=original, normalized=normalized, template=template, out_dir=out,
          splits=splits, report=report)


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
    report: Report = True,
) -> None:
    """Tune normalize.{lr,warp_strength,iterations,width} + warm start by a downstream proxy."""
    _tune("normalizer", params, study_name=study, n_trials=n_trials, storage=storage,
          original=original, ae=ae, template=template, out_dir=out, report=report)
