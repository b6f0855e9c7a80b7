"""Names in the MLflow store: experiments, tags and metrics, spelled once.

Writers (:mod:`deepfn.au.runs`, :mod:`deepfn.normalizer.jobs`, :mod:`deepfn.normalizer.transfer`,
:mod:`deepfn.tuning.report`, :mod:`deepfn.stats.run`) and the reader (:mod:`deepfn.stats.runs`)
import these; MLflow UI filters use the same strings, e.g.
``tags.group = 'person' and tags.normalization = 'deepfn'`` (docs/protocol.md).
"""

from __future__ import annotations

__all__ = [
    "EXPERIMENT_NORMALIZER", "EXPERIMENT_AU", "EXPERIMENT_STATS", "EXPERIMENT_TUNING",
    "EXPERIMENTS", "TAG_PARENT_RUN", "TAG_EXPERIMENT_KIND", "EXPERIMENT_KIND",
    "TAG_STAGE", "TAG_PROFILE", "TAG_DATA_VERSION", "TAG_GIT_COMMIT", "TAG_RUN_KEY",
    "TAG_KIND", "KIND_CONDITION", "KIND_MODEL", "TAG_MODEL_KEY", "TAG_GROUP", "TAG_EVALUATION",
    "TAG_TRAIN_GROUP", "TAG_TEST_GROUP", "TAG_NORMALIZATION", "TAG_SPLIT_SEED",
    "TAG_REPETITION", "TAG_TRAIN_SUBJECTS", "TAG_VAL_SUBJECTS", "TAG_TEST_SUBJECTS",
    "TAG_AUS_WITHOUT_POSITIVES", "CONDITION_TAGS", "EVALUATION_TAGS",
    "TAG_SUBJECT", "TAG_DATASET", "TAG_GENDER", "TAG_SKIN_TYPE", "TAG_TEMPLATE_SUBJECT",
    "TAG_WARM_START", "TAG_ROLE", "ROLE_STUDY", "ROLE_TRIAL", "TAG_OPTUNA_STUDY",
    "TAG_OPTUNA_STORAGE", "TAG_TUNE_TARGET", "TAG_OPTUNA_TRIAL", "TAG_OPTUNA_TRIAL_ID",
    "TAG_OPTUNA_RETRY_OF", "TAG_OPTUNA_STATE", "TAG_SOURCE_EXPERIMENT", "TAG_SOURCE_URI",
    "TAG_MANIFEST", "TAG_MANIFEST_SHA256", "TAG_FILTER", "TAG_N_RUNS",
    "METRIC_TRAIN_LOSS", "METRIC_VAL_F1", "METRIC_BEST_EPOCH", "METRIC_TRAIN_SECONDS",
    "METRIC_N_AUS_WITHOUT_POSITIVES", "SCORE_METRICS", "METRIC_VALUE", "METRIC_VAL_SCORE",
    "METRIC_N_FINISHED", "METRIC_TRIAL_VALUE", "METRIC_BEST_VALUE", "summary_metric", "au_metric",
    "participant_metric", "PARTICIPANT_METRIC_RE", "AU_METRIC_RE", "REFERENCES",
    "reference_metric",
]

# -- experiments --------------------------------------------------------------------------------
EXPERIMENT_NORMALIZER = "deepfn-normalizer"
EXPERIMENT_AU = "deepfn-au"
EXPERIMENT_STATS = "deepfn-stats"
EXPERIMENT_TUNING = "deepfn-tuning"
EXPERIMENTS = (EXPERIMENT_NORMALIZER, EXPERIMENT_AU, EXPERIMENT_TUNING, EXPERIMENT_STATS)

# -- MLflow's own tags --------------------------------------------------------------------------
TAG_PARENT_RUN = "mlflow.parentRunId"  # nests a run under another in the UI
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"  # experiment tag: GenAI or model development
EXPERIMENT_KIND = "custom_model_development"  # deepfn trains models (MLflow's "Machine learning")

# -- every run (deepfn.tracking.common_tags) ----------------------------------------------------
TAG_STAGE = "stage"
TAG_PROFILE = "profile"
TAG_DATA_VERSION = "data_version"
TAG_GIT_COMMIT = "git_commit"
TAG_RUN_KEY = "run_key"  # deterministic key of re-runnable work: a rerun skips FINISHED keys

# -- experiments stage (deepfn-au): condition (parent) and model (child) runs --------------------
TAG_KIND = "kind"
KIND_CONDITION = "condition"
KIND_MODEL = "model"
TAG_MODEL_KEY = "model_key"
TAG_GROUP = "group"  # the split: person | gender | skin | dataset
TAG_EVALUATION = "evaluation"  # dependent | independent
TAG_TRAIN_GROUP = "train_group"
TAG_TEST_GROUP = "test_group"
TAG_NORMALIZATION = "normalization"  # original | deepfn | person_mean | person_median
TAG_SPLIT_SEED = "split_seed"
TAG_REPETITION = "repetition"
TAG_TRAIN_SUBJECTS = "train_subjects"
TAG_VAL_SUBJECTS = "val_subjects"
TAG_TEST_SUBJECTS = "test_subjects"
TAG_AUS_WITHOUT_POSITIVES = "aus_without_positives"
CONDITION_TAGS = (TAG_GROUP, TAG_EVALUATION, TAG_TRAIN_GROUP, TAG_TEST_GROUP, TAG_NORMALIZATION)
EVALUATION_TAGS = CONDITION_TAGS + (TAG_SPLIT_SEED, TAG_REPETITION, TAG_TRAIN_SUBJECTS,
                                    TAG_VAL_SUBJECTS, TAG_TEST_SUBJECTS)

# -- pretrain / normalize / transfer (deepfn-normalizer) -----------------------------------------
TAG_SUBJECT = "subject"
TAG_DATASET = "dataset"
TAG_GENDER = "gender"
TAG_SKIN_TYPE = "skin_type"
TAG_TEMPLATE_SUBJECT = "template_subject"
TAG_WARM_START = "warm_start"

# -- tune (deepfn-tuning): one study run, trial runs nested under it ------------------------------
TAG_ROLE = "deepfn_role"
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"
TAG_OPTUNA_STUDY = "optuna_study"
TAG_OPTUNA_STORAGE = "optuna_storage"
TAG_TUNE_TARGET = "tune_target"
TAG_OPTUNA_TRIAL = "optuna_trial"
TAG_OPTUNA_TRIAL_ID = "optuna_trial_id"
TAG_OPTUNA_RETRY_OF = "optuna_retry_of"
TAG_OPTUNA_STATE = "optuna_state"

# -- stats (deepfn-stats) -----------------------------------------------------------------------
TAG_SOURCE_EXPERIMENT = "source_experiment"
TAG_SOURCE_URI = "source_uri"
TAG_MANIFEST = "manifest"
TAG_MANIFEST_SHA256 = "manifest_sha256"
TAG_FILTER = "filter"
TAG_N_RUNS = "n_runs"

# -- metrics ------------------------------------------------------------------------------------
METRIC_TRAIN_LOSS = "train_loss"  # per epoch (step = epoch, from 1)
METRIC_VAL_F1 = "val_f1"  # per epoch
METRIC_BEST_EPOCH = "best_epoch"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_N_AUS_WITHOUT_POSITIVES = "n_aus_without_positives"
SCORE_METRICS = ("score", "f1", "accuracy")  # score = mean of F1 and accuracy (paper §4.3)
METRIC_VALUE = "value"  # a trial's objective value
METRIC_VAL_SCORE = "val_score"  # a trial's intermediate validation score (step = epoch/fold)
METRIC_N_FINISHED = "n_finished"
METRIC_TRIAL_VALUE = "trial_value"
METRIC_BEST_VALUE = "best_value"

PARTICIPANT_METRIC_RE = r"^participant/(?P<key>[^/]+)/(?P<metric>score|f1|accuracy)$"
AU_METRIC_RE = r"^test/(?P<key>AU\d{2})/(?P<metric>score|f1|accuracy)$"


def summary_metric(metric: str) -> str:
    """``test/<metric>``: mean over test participants of their mean over AUs."""
    return f"test/{metric}"


def au_metric(au: str, metric: str) -> str:
    """``test/<AUxx>/<metric>``: mean over test participants of one AU."""
    return f"test/{au}/{metric}"


# Trivial classifiers scored on the same test frames as each model (deepfn.au.metrics).
REFERENCES: tuple[str, ...] = ("absent", "random", "majority")


def reference_metric(reference: str, metric: str) -> str:
    """``reference/<absent|random|majority>/<metric>``: a trivial classifier's expected
    ``metric`` on a run's test frames, averaged as ``test/<metric>`` is."""
    return f"reference/{reference}/{metric}"


def participant_metric(participant: str, metric: str) -> str:
    """``participant/<id>/<metric>``: one test participant's mean over AUs."""
    return f"participant/{participant}/{metric}"
