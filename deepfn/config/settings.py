"""One frozen pydantic model per ``params.yaml`` section (stage name = section name).

Unknown keys are rejected (``extra="forbid"``); ranges are declared with ``Field`` so the error
message can name the allowed values.  Defaults here are the paper's values where it gives one.
Every field carries a ``description``: ``docs/params.md`` is generated from them
(``make params-doc``, :mod:`deepfn.config.docs`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SynthesizeSettings", "PreprocessSettings", "TemplateSettings", "PretrainSettings",
    "NormalizeSettings", "TransferSettings", "ExperimentsSettings", "StatsSettings",
    "TuneSettings", "TrackingSettings", "ComputeSettings", "Settings", "SUBJECT_ID",
    "NORMALIZATIONS",
]

SUBJECT_ID = re.compile(r"^(F|M)\d{3}$|^SN\d{3}$")
Group = Literal["person", "gender", "skin", "dataset"]
GROUPS: tuple[Group, ...] = ("person", "gender", "skin", "dataset")
# The normalization methods (deepfn/normalizer/methods.py; the MLflow tag `normalization`).
Normalization = Literal["original", "deepfn", "person_mean", "person_median"]
NORMALIZATIONS: tuple[Normalization, ...] = ("original", "deepfn", "person_mean", "person_median")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_roster() -> tuple[str, ...]:
    return (
        tuple(f"F{i:03d}" for i in range(1, 11))
        + tuple(f"M{i:03d}" for i in range(1, 11))
        + tuple(f"SN{i:03d}" for i in range(1, 11))
    )


class SynthesizeSettings(_Section):
    """The corpus stage: render the synthetic FACS corpus or import licensed BP4D/DISFA."""

    source: Literal["synthetic", "licensed"] = Field(
        "synthetic",
        description="`synthetic`: render the synthetic FACS corpus (docs/synthetic.md); "
                    "`licensed`: import your BP4D/DISFA copies (docs/importers.md).")
    subjects: tuple[str, ...] = Field(
        default_factory=_default_roster, min_length=2,
        description="The roster: one `normalize@<subject>` DVC stage per entry (dvc.yaml "
                    "`foreach`). `F###`/`M###` are BP4D(-like), `SN###` DISFA(-like); unique. "
                    "For licensed data list the imported ids. Default: F001-F010, M001-M010, "
                    "SN001-SN010.")
    seed: int = Field(0, ge=0, description="Seed of the synthetic corpus (every subject draws "
                                           "from its own generator derived from it).")
    identity_strength: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Scale of the between-person differences in the synthetic corpus: 1 = "
                    "full identity, 0 = everyone shares one identity (the negative control, "
                    "docs/stats.md).")
    frames_per_sequence: int = Field(
        30, ge=2, le=2000,
        description="Frames per task (BP4D-like: 8 tasks per subject; DISFA-like: one video of "
                    "8x this many frames).")
    image_size: int = Field(128, ge=32, le=512,
                            description="Stored resolution of the raw corpus, pixels (square).")
    bp4d_root: str | None = Field(
        None, description="Licensed only: BP4D root (`<root>/F001/T1/2440.jpg`, `AUCoding/`); "
                          "`null` = no BP4D.")
    disfa_root: str | None = Field(
        None, description="Licensed only: DISFA root (`Videos_LeftCamera/`, "
                          "`ActionUnit_Labels/`); `null` = no DISFA.")
    metadata: str | None = Field(
        None, description="Licensed only (required there): CSV `subject,gender,skin_type` "
                          "(docs/importers.md).")
    detector: Literal["haar", "none"] = Field(
        "haar", description="Licensed only: face crop. `haar` (OpenCV Haar cascade) | `none` "
                            "(frames are already cropped).")

    @field_validator("subjects")
    @classmethod
    def _ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for s in v:
            if not SUBJECT_ID.match(s):
                raise ValueError(f"subject id {s!r} must look like F001, M001 (BP4D) or SN001 "
                                 "(DISFA)")
        if len(set(v)) != len(v):
            raise ValueError("subject ids must be unique")
        return v

    @model_validator(mode="after")
    def _licensed_roots(self) -> SynthesizeSettings:
        if self.source == "licensed":
            if not (self.bp4d_root or self.disfa_root):
                raise ValueError("source 'licensed' needs bp4d_root and/or disfa_root")
            if not self.metadata:
                raise ValueError("source 'licensed' needs metadata (CSV subject,gender,skin_type)")
        return self


class PreprocessSettings(_Section):
    """Gray, histogram equalization, resize to the autoencoder and the classifier sizes."""

    ae_size: int = Field(128, ge=32, le=256, multiple_of=32,
                         description="Autoencoder input resolution, pixels (paper: 128).")
    clf_size: int = Field(64, ge=32, le=128, multiple_of=8,
                          description="LeNet-5 input resolution, pixels (paper: 64).")
    equalize: bool = Field(True, description="Histogram equalization (kornia), paper §3.1.")


class TemplateSettings(_Section):
    """The template subject every face is normalized onto."""

    strategy: Literal["most_expressive"] = Field(
        "most_expressive",
        description="Paper §3.2: the BP4D subject with the highest median count of active AUs "
                    "per frame.")
    subject: str | None = Field(
        None, description="Force this subject id as the template instead (must be in "
                          "`synthesize.subjects`); `null` = the strategy's choice.")


class PretrainSettings(_Section):
    """Warm start (beyond the paper, §6): E and D^y trained once on the template."""

    iterations: int = Field(
        0, ge=0, le=1_000_000,
        description="Template-only iterations of E and D^y before the per-subject stages "
                    "(warm start, beyond the paper); 0 = off (the file holds the seeded init).")


class NormalizeSettings(_Section):
    """The per-subject DeepFN autoencoders (paper §3.1, Tables 1-2, Eq. 1)."""

    width: int = Field(128, ge=2, le=512,
                       description="Base channels w: E has w, 2w, 4w, 8w filters (paper: 128; "
                                   "a multiple of 4).")
    latent: int = Field(1024, ge=8, le=8192,
                        description="Dense bottleneck size (paper: 1024).")
    iterations: int = Field(50_000, ge=1, le=10_000_000,
                            description="Training iterations per subject (paper: 50,000).")
    batch_size: int = Field(64, ge=2, le=1024,
                            description="Template frames and subject frames per iteration, each "
                                        "(paper: 64 + 64).")
    lr: float = Field(5.0e-5, gt=0.0, le=1.0, description="Adam learning rate (paper: 5e-5).")
    beta1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta1 (paper: 0.5).")
    beta2: float = Field(0.999, ge=0.0, lt=1.0, description="Adam beta2 (paper: 0.999).")
    warm_start: bool = Field(
        True, description="Fine-tune every subject from `models/pretrained.pt` (the `pretrain` "
                          "stage); false = a seeded fresh init per subject.")
    mean_face: bool = Field(
        False, description="Decoders add a learned per-pixel bias, initialised to logit(mean "
                           "frame of their person), before the sigmoid: they learn deviations "
                           "from the average face (docs/normalizer.md, \"Mean face\"). Paper: "
                           "false (Table 2).")
    center_input: bool = Field(
        False, description="E sees each frame minus its person's mean frame (the template's for "
                           "template frames, the subject's for the subject's; "
                           "docs/normalizer.md, \"Centred input\"). Paper: false.")
    finetune: Literal["all", "decoder_subject"] = Field(
        "all", description="What the per-subject stage trains: `all` = E, D^y and D^x (Eq. 1, "
                           "the paper) | `decoder_subject` = D^x only, E and D^y stay as the "
                           "warm start left them (needs `warm_start` and `pretrain.iterations` "
                           "> 0).")
    init: Literal["glorot", "kaiming"] = Field(
        "glorot", description="Weight init of a fresh model: `glorot` (Keras' default, as the "
                              "faceswap model the paper used) | `kaiming` (He-uniform for "
                              "LeakyReLU(0.1)).")
    precision: Literal["fp32", "bf16"] = Field(
        "bf16", description="`bf16`: forward under bf16 autocast with channels_last (loss in "
                            "fp32) | `fp32`: plain eager.")
    rotation: float = Field(10.0, ge=0.0, le=90.0,
                            description="Random affine augmentation: rotation ±degrees "
                                        "(paper profile: 10).")
    scale: float = Field(0.05, ge=0.0, le=0.5,
                         description="Random affine augmentation: scale 1 ± this (paper profile: "
                                     "0.05).")
    translation: float = Field(0.05, ge=0.0, le=0.5,
                               description="Random affine augmentation: shift ± this fraction "
                                           "of the image (paper profile: 0.05).")
    warp_grid: int = Field(5, ge=2, le=32,
                           description="Random warp (the noise the autoencoder removes): a "
                                       "coarse grid of this many × this many random offsets.")
    warp_strength: float = Field(0.03, ge=0.0, le=0.5,
                                 description="Random warp: standard deviation of the offsets, "
                                             "as a fraction of the image size.")
    checkpoint_every: int = Field(1000, ge=1,
                                  description="Resumable work checkpoint interval, iterations.")
    log_every: int = Field(100, ge=1, description="MLflow metric interval, iterations.")
    min_frames: int = Field(16, ge=1,
                            description="A subject with fewer frames is an error naming it.")
    seed: int = Field(0, ge=0, description="Seed of initialisation and batch sampling (each "
                                           "subject derives its own).")


class TransferSettings(_Section):
    """Eq. 2 over every subject, and the normalization diagnostics."""

    batch_size: int = Field(256, ge=1, le=8192,
                            description="Frames per inference batch (no effect on the output).")


class ExperimentsSettings(_Section):
    """The LeNet-5 AU classifiers over every group split (paper §4, Table 5)."""

    groups: tuple[Group, ...] = Field(
        GROUPS, description="Group splits to run, any of `person`, `gender`, `skin`, "
                            "`dataset` (non-empty, no repeats).")
    normalizations: tuple[Normalization, ...] = Field(
        NORMALIZATIONS,
        description="Inputs to train on, any of `original` (preprocessed frames), `deepfn` "
                    "(DeepFN-normalized frames), `person_mean` / `person_median` (each "
                    "person's mean / median frame swapped for the template's: the "
                    "person-calibration baselines, docs/normalizer.md) (non-empty, no repeats).")
    repetitions: int = Field(20, ge=1, le=1000,
                             description="Random subject draws per split (paper: 20).")
    epochs: int = Field(50, ge=1, le=10_000,
                        description="Epochs per model; the best validation-F1 epoch is kept "
                                    "(paper: 50).")
    equal_steps: bool = Field(
        True, description="A model trained on fewer subjects (person-dependent: 1) runs "
                          "n_train × the epochs, so every model takes about the same number of "
                          "Adam steps (docs/protocol.md). Paper: false.")
    match_frames: bool = Field(
        False, description="Every model trains on one subject's worth of frames (the negative "
                           "control's clean protocol; not the paper's). Needs `subject_frames: "
                           "parts`.")
    subject_frames: Literal["parts", "whole"] = Field(
        "parts", description="What a model reads of train and validation subjects that are not "
                             "its test subjects: `parts` = their train / validation parts "
                             "(blocks 1-5 / 6 of each task) | `whole` = every frame (paper "
                             "§4.3: four participants train, two validate). Person-dependent "
                             "models read the subject's own train / validation parts either "
                             "way; every model is tested on test parts (docs/protocol.md).")
    batch_size: int = Field(64, ge=1, le=4096, description="Training batch size (paper: 64).")
    lr: float = Field(5.0e-5, gt=0.0, le=1.0, description="Adam learning rate (paper: 5e-5).")
    beta1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta1 (paper: 0.5).")
    beta2: float = Field(0.999, ge=0.0, lt=1.0, description="Adam beta2 (paper: 0.999).")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0,
                                description="Adam weight decay (paper: none).")
    n_train: int = Field(4, ge=1,
                         description="Training subjects per repetition and group (paper: 4).")
    n_val: int = Field(2, ge=1,
                       description="Validation subjects per repetition and group (paper: 2).")
    dependent_subjects: int = Field(
        0, ge=0, le=1000,
        description="`person` split: person-dependent models for this many test subjects per "
                    "repetition, drawn with the split's seed; 0 = every test subject (paper). "
                    "The person-independent model is tested on all of them either way.")
    min_test: int = Field(1, ge=1,
                          description="At least this many test subjects per group, else the "
                                      "split is an error.")
    threshold: float = Field(0.5, gt=0.0, lt=1.0,
                             description="Sigmoid output above which an AU counts as present "
                                         "(with `thresholds: fixed`; paper: 0.5).")
    thresholds: Literal["fixed", "validation"] = Field(
        "fixed", description="`fixed`: `threshold` for every AU (paper) | `validation`: per AU "
                             "the threshold (0.05..0.95) with the best F1 on the model's "
                             "validation frames (see `subject_frames`), chosen with the best "
                             "epoch (docs/protocol.md).")
    flip: bool = Field(
        False, description="Augmentation: each epoch mirrors a random half of the training "
                           "frames left-right. Paper: false.")
    class_balance: bool = Field(
        False, description="Class-balanced BCE: a positive label of an AU weighs negatives / "
                           "positives of that AU in the model's training labels (1..10). "
                           "Paper: false.")
    precision: Literal["fp32", "bf16"] = Field(
        "bf16", description="`bf16` (autocast + channels_last) | `fp32`.")
    strategy: Literal["auto", "sequential", "process", "ensemble"] = Field(
        "auto", description="How models are trained: `sequential` (one process) | `process` (a "
                            "pool of worker processes) | `ensemble` (up to 128 models of one "
                            "shape at once, vectorized with torch.func.vmap: for a GPU) | "
                            "`auto` (`ensemble` on CUDA; on a CPU `process`, or `sequential` "
                            "for tiny runs). Results do not depend on it.")
    workers: int = Field(0, ge=0, le=64,
                         description="Worker processes of the `process` strategy; 0 = one per "
                                     "core.")
    seed: int = Field(0, ge=0, description="Seed of subject draws, frame splits and inits.")

    @field_validator("groups", "normalizations")
    @classmethod
    def _nonempty_unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list without repeats")
        return v

    @model_validator(mode="after")
    def _frames(self) -> ExperimentsSettings:
        if self.match_frames and self.subject_frames != "parts":
            raise ValueError("match_frames: true gives every model one subject's train part; "
                             "set subject_frames: parts, or match_frames: false")
        return self


class StatsSettings(_Section):
    """Table 5's tests (docs/stats.md)."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0,
                         description="Significance level of every test (paper: 0.05).")
    correction: Literal["holm", "bonferroni", "none"] = Field(
        "holm", description="Multiple-comparison correction across the family of tests: "
                            "`holm` | `bonferroni` | `none`.")


class TuneSettings(_Section):
    """The Optuna study (docs/tuning.md); search spaces are `[low, high]` or a list of choices."""

    enabled: bool = Field(False,
                          description="The `tune` DVC stage is a no-op unless true.")
    target: Literal["classifier", "normalizer"] = Field(
        "classifier", description="What the DVC stage tunes: `classifier` | `normalizer`.")
    study: str = Field("deepfn-classifier", description="Optuna study name (resumed if it "
                                                        "exists).")
    n_trials: int = Field(20, ge=1, le=100_000,
                          description="Finished (complete + pruned) trials the study runs to.")
    storage: str | None = Field(
        None, description="Optuna storage URL (e.g. `postgresql://...`); `null` = the "
                          "JournalStorage file `.optuna/journal.log`.")
    pruner: Literal["median", "successive_halving", "none"] = Field(
        "median", description="`median` | `successive_halving` | `none`.")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler.")
    lr: tuple[float, float] = Field((1.0e-5, 3.0e-3),
                                    description="Classifier search space: learning rate "
                                                "`[low, high]`, log-uniform.")
    beta1: tuple[float, float] = Field((0.3, 0.95),
                                       description="Classifier search space: Adam beta1 "
                                                   "`[low, high]`.")
    batch_size: tuple[int, ...] = Field((32, 64, 128),
                                        description="Classifier search space: batch size "
                                                    "choices.")
    epochs: tuple[int, int] = Field((2, 12), description="Classifier search space: epochs "
                                                         "`[low, high]`.")
    weight_decay: tuple[float, float] = Field((1.0e-6, 1.0e-2),
                                              description="Classifier search space: weight "
                                                          "decay `[low, high]`, log-uniform.")
    warp_strength: tuple[float, float] = Field((0.0, 0.08),
                                               description="Normalizer search space: "
                                                           "`normalize.warp_strength` "
                                                           "`[low, high]`.")
    width: tuple[int, ...] = Field((8, 16, 32),
                                   description="Normalizer search space: `normalize.width` "
                                               "choices.")
    iterations: tuple[int, int] = Field((50, 400),
                                        description="Normalizer search space: "
                                                    "`normalize.iterations` `[low, high]`.")

    @field_validator("lr", "beta1", "epochs", "weight_decay", "warp_strength", "iterations")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if len(v) != 2 or not v[0] < v[1]:
            raise ValueError("must be [low, high] with low < high")
        return v


class TrackingSettings(_Section):
    """Where MLflow runs go."""

    uri: str = Field("sqlite:///mlruns/mlflow.db",
                     description="MLflow tracking URI (a sqlite file or a tracking server); "
                                 "`MLFLOW_TRACKING_URI` overrides it, and an explicit URI "
                                 "(`deepfn stats --tracking-uri`) overrides both.")


class ComputeSettings(_Section):
    """Where the stages compute: the device (resolved once per stage by
    ``deepfn.compute.device``) and the engine that runs the per-subject normalizers, the
    experiments' model jobs and the tuning workers (``deepfn.compute.engine``; docs/cluster.md).
    None of these enters a run key: the resolved device type does (``cpu`` | ``cuda``), and the
    engine does not change a number.
    """

    device: str = Field(
        "auto",
        description="auto | cpu | cuda | cuda:N; auto = CUDA when torch sees a GPU, else the CPU",
    )
    engine: Literal["local", "ray"] = Field(
        "local", description="`local`: `dvc repro` runs each normalize@subject stage in turn "
                             "and the experiments' jobs on this machine (`make run`) | `ray`: "
                             "`deepfn fanout normalize` runs the stale normalizers as Ray tasks, "
                             "then `dvc repro` goes on; `experiments` sends its model jobs and "
                             "`tune` its Optuna workers to the cluster (docs/cluster.md).")
    address: str | None = Field(
        None, description="The Ray cluster for `engine: ray`: null = start a local one on "
                          "127.0.0.1 | `auto` = join the cluster `ray start` runs on this machine "
                          "| `host:port` (a head node's GCS) | `ray://host:port` (Ray client).")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda or cuda:N (auto = CUDA when available)")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None or v == "auto":
            return v
        if not re.fullmatch(r"(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}", v) or \
                not 0 < int(v.rsplit(":", 1)[1]) < 65536:
            raise ValueError(f"{v!r} is not a Ray address; use null (a local cluster), auto, "
                             "host:port or ray://host:port")
        return v


class Settings(_Section):
    """All sections, resolved against the selected profile."""

    profile: Literal["smoke", "default", "paper"] = Field(
        "default", description="The scale: `smoke` (CI, `make smoke`) | `default` (`make run`, "
                               "≤ 15 min on 2 CPU cores) | `paper` (the paper's scale, a GPU).")
    synthesize: SynthesizeSettings = SynthesizeSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    template: TemplateSettings = TemplateSettings()
    pretrain: PretrainSettings = PretrainSettings()
    normalize: NormalizeSettings = NormalizeSettings()
    transfer: TransferSettings = TransferSettings()
    experiments: ExperimentsSettings = ExperimentsSettings()
    stats: StatsSettings = StatsSettings()
    tune: TuneSettings = TuneSettings()
    tracking: TrackingSettings = TrackingSettings()
    compute: ComputeSettings = ComputeSettings()

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        forced = self.template.subject
        if forced is not None and forced not in self.synthesize.subjects:
            raise ValueError(f"template.subject {self.template.subject!r} is not in "
                             "synthesize.subjects")
        if self.normalize.finetune != "all" and not (self.normalize.warm_start
                                                     and self.pretrain.iterations > 0):
            raise ValueError("normalize.finetune: decoder_subject keeps E and D^y from the warm "
                             "start; set normalize.warm_start: true and pretrain.iterations > 0, "
                             "or finetune: all")
        return self
