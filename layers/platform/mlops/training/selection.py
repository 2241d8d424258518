"""Cross-validated selection among the candidates, then a refit of the best on the whole training split.

Uses pandas and scikit-learn, so it is imported only by training code (the pipeline container image),
never by the Lambda scoring path. Models are fed with exactly the inputs built by
:func:`mlops.data.features.prepare_features`, so the exported ONNX graph sees identical values at serving time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import ClassifierMixin, clone
from sklearn.metrics import (
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from mlops.data.dataset import frame_to_columns, labels, prepared_to_frame
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import prepare_features
from mlops.training.candidates import CANDIDATES, available_threads, build_pipeline


@dataclass
class TrainingResult:
    """The refitted best pipeline, its name and the cross-validated AUC of every candidate."""

    pipeline: Pipeline
    selected: str
    cv_auc: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    validation_probabilities: np.ndarray = field(default_factory=lambda: np.empty(0))
    """The selected candidate's out-of-fold probabilities for every training row (validation predictions)."""
    validation_labels: np.ndarray = field(default_factory=lambda: np.empty(0))


def _fold_probabilities(
    pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, train_index: np.ndarray, test_index: np.ndarray
) -> np.ndarray:
    fitted = clone(pipeline).fit(x.iloc[train_index], y[train_index])
    return fitted.predict_proba(x.iloc[test_index])[:, 1]


def train_and_select(
    train_df: pd.DataFrame,
    spec: FeatureSpec,
    seed: int = 42,
    cv_folds: int = 5,
    candidates: dict[str, Callable[[int], ClassifierMixin]] | None = None,
) -> TrainingResult:
    """Stratified K-fold CV AUC for every candidate, select the best mean, refit it on all of ``train_df``.

    ``spec`` must have been learned on ``train_df`` (it is reused inside the folds). Work runs in threads
    (scikit-learn's tree builders release the GIL), which also works where processes cannot be forked
    (AWS Lambda has no /dev/shm).
    """
    candidates = CANDIDATES if candidates is None else candidates
    if not candidates:
        raise ValueError("no candidate models")
    schema = spec.data_schema
    y = labels(train_df, schema)
    if len(np.unique(y)) != 2:
        raise ValueError("the training data must contain both classes")
    x = prepared_to_frame(prepare_features(frame_to_columns(train_df, schema), spec))
    folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(x, y))
    pipelines = {name: build_pipeline(factory(seed), spec) for name, factory in candidates.items()}

    timings: dict[str, float] = {}
    started = time.perf_counter()
    jobs = [(name, train, test) for name in pipelines for train, test in folds]
    with parallel_config(backend="threading", n_jobs=min(available_threads(), len(jobs))):
        fold_probabilities = Parallel()(
            delayed(_fold_probabilities)(pipelines[name], x, y, train, test) for name, train, test in jobs
        )
    timings["cross_validation_seconds"] = time.perf_counter() - started

    out_of_fold = {name: np.zeros(len(y)) for name in pipelines}
    fold_auc: dict[str, list[float]] = {name: [] for name in pipelines}
    for (name, _, test), probabilities in zip(jobs, fold_probabilities, strict=True):
        out_of_fold[name][test] = probabilities
        fold_auc[name].append(float(roc_auc_score(y[test], probabilities)))
    cv_auc = {name: {"mean": float(np.mean(v)), "std": float(np.std(v))} for name, v in fold_auc.items()}
    selected = max(cv_auc, key=lambda name: cv_auc[name]["mean"])

    started = time.perf_counter()
    final = pipelines[selected]
    if "n_jobs" in final.named_steps["classifier"].get_params():
        final.set_params(classifier__n_jobs=available_threads())
    final.fit(x, y)
    if "n_jobs" in final.named_steps["classifier"].get_params():
        final.set_params(classifier__n_jobs=1)
    timings["refit_seconds"] = time.perf_counter() - started
    return TrainingResult(
        pipeline=final,
        selected=selected,
        cv_auc=cv_auc,
        timings=timings,
        validation_probabilities=out_of_fold[selected],
        validation_labels=y,
    )
