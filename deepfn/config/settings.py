"""One frozen pydantic model per ``params.yaml`` section (stage name = section name).

Unknown keys are rejected (``extra="forbid"``); ranges are declared with ``Field`` so the error
message can name the allowed values.  Defaults here are the paper's values where it gives one.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SynthesizeSettings", "PreprocessSettings", "TemplateSettings", "PretrainSettings",
    "NormalizeSettings", "TransferSettings", "ExperimentsSettings", "StatsSettings",
    "TuneSettings", "TrackingSettings", "Settings", "SUBJECT_ID",
]

SUBJECT_ID = re.compile(r"^(F|M)\d{3}$|^SN\d{3}$")
GROUPS = ("person", "gender", "skin", "dataset")


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

    source: Literal["synthetic", "licensed"] = "synthetic"
    subjects: tuple[str, ...] = Field(default_factory=_default_roster, min_length=2)
    seed: int = Field(0, ge=0)
    identity_strength: float = Field(1.0, ge=0.0, le=1.0)
    frames_per_sequence: int = Field(30, ge=2, le=2000)
    image_size: int = Field(128, ge=32, le=512)
    bp4d_root: str | None = None
    disfa_root: str | None = None
    metadata: str | None = None
    detector: Literal["haar", "none"] = "haar"  # licensed: face crop (none = pre-cropped frames)

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
    ae_size: int = Field(128, ge=32, le=256, multiple_of=32)
    clf_size: int = Field(64, ge=32, le=128, multiple_of=8)
    equalize: bool = True


class TemplateSettings(_Section):
    strategy: Literal["most_expressive"] = "most_expressive"
    subject: str | None = None  # force a template subject instead of the paper's rule


class PretrainSettings(_Section):
    """Warm start (beyond the paper, §6): E and D^y trained once on the template."""

    iterations: int = Field(0, ge=0, le=1_000_000)


class NormalizeSettings(_Section):
    width: int = Field(128, ge=2, le=512)
    latent: int = Field(1024, ge=8, le=8192)
    iterations: int = Field(50_000, ge=1, le=10_000_000)
    batch_size: int = Field(64, ge=2, le=1024)
    lr: float = Field(5.0e-5, gt=0.0, le=1.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    warm_start: bool = True
    # decoders add a learned per-pixel bias, initialised to logit(mean frame of their person),
    # before the sigmoid (docs/normalizer.md, "Mean face"); false = Table 2 exactly
    mean_face: bool = False
    # E sees each frame minus its person's mean frame (the template's for template frames, the
    # subject's for the subject's; docs/normalizer.md, "Centred input"); false = the paper
    center_input: bool = False
    # what the per-subject fine-tune trains: all (E, D^y, D^x: Eq. 1, the paper) | decoder_subject
    # (D^x only; E and D^y stay as the template warm start left them: docs/normalizer.md,
    # "Fine-tuning only D^x")
    finetune: Literal["all", "decoder_subject"] = "all"
    # weight init of a fresh model: glorot (Keras' default, as faceswap) | kaiming (He-uniform
    # for LeakyReLU(0.1): a shorter initial plateau)
    init: Literal["glorot", "kaiming"] = "glorot"
    precision: Literal["fp32", "bf16"] = "bf16"
    rotation: float = Field(10.0, ge=0.0, le=90.0)
    scale: float = Field(0.05, ge=0.0, le=0.5)
    translation: float = Field(0.05, ge=0.0, le=0.5)
    warp_grid: int = Field(5, ge=2, le=32)
    warp_strength: float = Field(0.03, ge=0.0, le=0.5)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(100, ge=1)
    min_frames: int = Field(16, ge=1)
    seed: int = Field(0, ge=0)


class TransferSettings(_Section):
    batch_size: int = Field(256, ge=1, le=8192)


class ExperimentsSettings(_Section):
    groups: tuple[Literal["person", "gender", "skin", "dataset"], ...] = GROUPS
    normalizations: tuple[Literal["original", "deepfn"], ...] = ("original", "deepfn")
    repetitions: int = Field(20, ge=1, le=1000)
    epochs: int = Field(50, ge=1, le=10_000)
    equal_steps: bool = True  # models on fewer subjects train more epochs (same Adam steps)
    match_frames: bool = False  # every model trains on one subject's worth of frames
    batch_size: int = Field(64, ge=1, le=4096)
    lr: float = Field(5.0e-5, gt=0.0, le=1.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    n_train: int = Field(4, ge=1)
    n_val: int = Field(2, ge=1)
    min_test: int = Field(1, ge=1)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    precision: Literal["fp32", "bf16"] = "bf16"
    strategy: Literal["auto", "sequential", "process"] = "auto"
    workers: int = Field(0, ge=0, le=64)  # 0 = one per core
    seed: int = Field(0, ge=0)

    @field_validator("groups", "normalizations")
    @classmethod
    def _nonempty_unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list without repeats")
        return v


class StatsSettings(_Section):
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    correction: Literal["holm", "bonferroni", "none"] = "holm"


class TuneSettings(_Section):
    enabled: bool = False
    target: Literal["classifier", "normalizer"] = "classifier"
    study: str = "deepfn-classifier"
    n_trials: int = Field(20, ge=1, le=100_000)
    storage: str | None = None  # default: a JournalStorage file under .optuna/
    pruner: Literal["median", "successive_halving", "none"] = "median"
    seed: int = Field(0, ge=0)
    lr: tuple[float, float] = (1.0e-5, 3.0e-3)
    beta1: tuple[float, float] = (0.3, 0.95)
    batch_size: tuple[int, ...] = (32, 64, 128)
    epochs: tuple[int, int] = (2, 12)
    weight_decay: tuple[float, float] = (1.0e-6, 1.0e-2)
    warp_strength: tuple[float, float] = (0.0, 0.08)
    width: tuple[int, ...] = (8, 16, 32)
    iterations: tuple[int, int] = (50, 400)

    @field_validator("lr", "beta1", "epochs", "weight_decay", "warp_strength", "iterations")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if len(v) != 2 or not v[0] < v[1]:
            raise ValueError("must be [low, high] with low < high")
        return v


class TrackingSettings(_Section):
    uri: str = "sqlite:///mlruns/mlflow.db"


class ComputeSettings(_Section):
    """Where the stages compute (resolved once per stage by ``deepfn.compute.device``).

    The cluster settings (``engine: local | ray``, ``address``) belong here too, next to
    ``device``.
    """

    device: str = Field(
        "auto",
        description="auto | cpu | cuda | cuda:N; auto = CUDA when torch sees a GPU, else the CPU",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda or cuda:N (auto = CUDA when available)")
        return v


class Settings(_Section):
    """All sections, resolved against the selected profile."""

    profile: Literal["smoke", "default", "paper"] = "default"
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
