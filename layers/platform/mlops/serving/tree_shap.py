"""Explanations of churn scores: exact TreeSHAP contributions of every ORIGINAL input feature of the schema.

What is explained is the registered scikit-learn pipeline (`model.skops`: one-hot encoding, then a tree
ensemble) with `shap.TreeExplainer`: exact TreeSHAP, `tree_path_dependent` (expectations come from the training
data the trees recorded, so no background sample is stored or shipped). Contributions are in the explainer's
output space, reported as `output_space`:

* gradient boosting: log-odds, the model's `decision_function` (the probability is its logistic);
* random forest: the positive-class probability, `predict_proba[:, 1]`.

In that space `base_value + sum(contributions) == model_output` for every row, up to float rounding.

The model sees more columns than the caller sends. They are mapped back to the schema's input features by a
fixed linear map whose rows each sum to 1, so the sum (additivity) is kept exactly:

* a raw numerical feature keeps its own SHAP value;
* a categorical feature gets the sum over all of its one-hot columns (the zero columns too: "not OH" is
  information the trees used);
* a derived feature (`mlops.data.derived_features.DERIVED_FEATURES`) is split equally among its `sources`:
  `total_minutes` gives a quarter to each of the four minute columns, `avg_call_duration` an eighth to each of
  its eight, `high_service_calls` all of its value to `number_customer_service_calls`. Equal shares are a
  convention (a derived feature's Shapley value has no unique split among its inputs without running SHAP on a
  model of the raw inputs); they keep the sum and credit every input the derived feature was computed from.

Each contribution lists where it came from (`from`: model input, kind, share) and each response carries the
same description in `method`.

Needs shap and scikit-learn: imported by the explain function's container image and the pilot's pipeline
image, never by the zip scoring function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import shap
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline

from mlops.api.contracts import ContributionSource, OutputSpace
from mlops.core.errors import ArtifactIntegrityError
from mlops.data.derived_features import DERIVED_BY_NAME
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import PreparedFeatures

SKOPS = "model.skops"


class Attributions(NamedTuple):
    """Per-row TreeSHAP contributions of the input features (n, features) and the model's own output (n,)."""

    contributions: np.ndarray
    model_output: np.ndarray


class TreeShapExplainer:
    """Exact TreeSHAP of a fitted churn pipeline (`mlops.training.candidates.build_pipeline`), per input feature.

    Refuses (ArtifactIntegrityError) a pipeline that is not the one-hot + tree ensemble layout the feature spec
    describes, since the map back to input features would then be wrong.
    """

    def __init__(self, pipeline: Pipeline, spec: FeatureSpec) -> None:
        preprocess, classifier = _pipeline_steps(pipeline)
        if list(getattr(classifier, "classes_", [])) != [0, 1]:
            raise ArtifactIntegrityError(SKOPS, "expected a binary classifier trained on 0/1 labels")
        if isinstance(classifier, GradientBoostingClassifier):
            self.output_space: OutputSpace = "log_odds"
        elif isinstance(classifier, RandomForestClassifier):
            self.output_space = "probability"
        else:
            raise ArtifactIntegrityError(SKOPS, f"TreeSHAP explanations do not support {type(classifier).__name__}")
        self._classifier = classifier
        self.features: tuple[str, ...] = tuple(spec.data_schema.feature_columns)
        self.numerical: frozenset[str] = frozenset(spec.data_schema.numerical)
        self._layout = _model_layout(preprocess, spec, self.features)
        self.sources = self._layout.sources
        self._explainer = shap.TreeExplainer(classifier, feature_perturbation="tree_path_dependent")
        self.base_value = _positive_class(np.ravel(self._explainer.expected_value))
        self.method = (
            f"Exact TreeSHAP (shap {shap.__version__} TreeExplainer, tree_path_dependent) of the scikit-learn "
            f"{type(classifier).__name__}, in {self.output_space.replace('_', '-')} space: base_value + the sum "
            "of all contributions (with remaining_contribution, when ?top=N leaves some out) = model_output. One-hot "
            "columns are summed into their categorical feature; each derived feature's contribution is split "
            "equally among its source features (see `from`)."
        )

    def model_columns(self, prepared: PreparedFeatures) -> np.ndarray:
        """What the pipeline's preprocessing step gives the classifier (one-hot, then numerical columns), built
        directly from the prepared inputs: the same values, without the DataFrame and scikit-learn input checks
        that cost most of a single explanation's time."""
        layout = self._layout
        first = next(iter(prepared.inputs.values()))
        columns = np.zeros((first.shape[0], layout.width))
        for name, start, offsets in layout.one_hot:
            positions = np.fromiter((offsets.get(v, -1) for v in prepared.inputs[name][:, 0]), dtype=np.intp)
            known = positions >= 0  # an unknown category is all zeros, as handle_unknown="ignore" does
            columns[np.flatnonzero(known), start + positions[known]] = 1.0
        for name, column in layout.passthrough:
            columns[:, column] = prepared.inputs[name][:, 0]
        return columns

    def attribute(self, prepared: PreparedFeatures) -> Attributions:
        """Contributions of ``self.features`` for every row of ``prepared``, and the model output they sum to."""
        model_columns = self.model_columns(prepared)
        values = np.asarray(self._explainer.shap_values(model_columns, check_additivity=False))
        if values.ndim == 3:  # (rows, columns, classes): probability models explain each class
            values = values[..., 1]
        if self.output_space == "log_odds":
            output = self._classifier.decision_function(model_columns)
        else:
            output = self._classifier.predict_proba(model_columns)[:, 1]
        return Attributions(
            contributions=values @ self._layout.weights, model_output=np.asarray(output, dtype=np.float64)
        )

    def input_values(self, prepared: PreparedFeatures) -> dict[str, list[float | str]]:
        """The value the model used for each input feature and row (after imputation)."""
        values: dict[str, list[float | str]] = {}
        for name in self.features:
            column = prepared.inputs[name][:, 0]
            # float32 inputs shown at float32 precision: 129.1, not 129.10000610351562
            values[name] = [float(str(v)) for v in column] if name in self.numerical else [str(v) for v in column]
        return values


def _pipeline_steps(pipeline: Pipeline) -> tuple[Any, Any]:
    try:
        return pipeline.named_steps["preprocess"], pipeline.named_steps["classifier"]
    except (AttributeError, KeyError) as error:
        raise ArtifactIntegrityError(SKOPS, "expected a pipeline of 'preprocess' then 'classifier'") from error


def _positive_class(values: np.ndarray) -> float:
    return float(values[1] if values.size == 2 else values[0])


@dataclass(frozen=True)
class _ModelLayout:
    """Where each model column comes from: the one-hot blocks and passed-through numerical inputs, and the
    (model columns x input features) weights, each row summing to 1, with each feature's sources."""

    width: int
    one_hot: tuple[tuple[str, int, dict[str, int]], ...]  # (categorical, first column, category -> offset)
    passthrough: tuple[tuple[str, int], ...]  # (numerical model input, column)
    weights: np.ndarray
    sources: dict[str, list[ContributionSource]]


def _model_layout(preprocess: Any, spec: FeatureSpec, features: tuple[str, ...]) -> _ModelLayout:
    declared = {name: (step, columns) for name, step, columns in getattr(preprocess, "transformers", [])}
    encoder = getattr(preprocess, "named_transformers_", {}).get("categorical")
    categorical, numerical = declared.get("categorical", (None, None))[1], declared.get("numerical", (None, None))
    if categorical != spec.model_categorical or numerical != ("passthrough", spec.model_numerical):
        raise ArtifactIntegrityError(SKOPS, "the pipeline's columns do not match the feature spec's model inputs")
    if getattr(encoder, "drop", None) is not None or getattr(encoder, "max_categories", None) is not None:
        raise ArtifactIntegrityError(SKOPS, "expected a one-hot encoder with one column per category")
    index = {name: position for position, name in enumerate(features)}
    slices = preprocess.output_indices_
    width = max(s.stop for s in slices.values())
    weights = np.zeros((width, len(features)))
    sources: dict[str, list[ContributionSource]] = {name: [] for name in features}

    one_hot = []
    column = slices["categorical"].start
    for name, categories in zip(spec.model_categorical, encoder.categories_, strict=True):
        one_hot.append((name, column, {str(category): offset for offset, category in enumerate(categories)}))
        weights[column : column + len(categories), index[name]] = 1.0
        column += len(categories)
        sources[name].append(ContributionSource(model_input=name, kind="one_hot", share=1.0))
    if column != slices["categorical"].stop:
        raise ArtifactIntegrityError(SKOPS, "the one-hot encoder's columns do not match its categories")

    columns = range(slices["numerical"].start, slices["numerical"].stop)
    for column, name in zip(columns, spec.model_numerical, strict=True):
        if name in index:
            weights[column, index[name]] = 1.0
            sources[name].append(ContributionSource(model_input=name, kind="raw", share=1.0))
            continue
        derived_sources = DERIVED_BY_NAME[name].sources
        share = 1.0 / len(derived_sources)
        for source in derived_sources:
            weights[column, index[source]] += share
            sources[source].append(ContributionSource(model_input=name, kind="derived", share=share))
    if not np.allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12):
        raise ArtifactIntegrityError(SKOPS, "some model columns are not mapped to an input feature")
    return _ModelLayout(
        width=width,
        one_hot=tuple(one_hot),
        passthrough=tuple(zip(spec.model_numerical, columns, strict=True)),
        weights=weights,
        sources=sources,
    )
