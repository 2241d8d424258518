"""More customers like a data set's, for any churn schema: features from a Gaussian copula conditional on real
categorical profiles, outcomes from a churn model of the generator's own (the simulation's truth, never the
model under test).

The pilot's A/B test needs thousands of customers per arm while the held-out split has a few hundred, so it
draws further customers from a generator fitted on the training split. :meth:`CustomerGenerator.fit` learns:

- **each numerical column's marginal**: its empirical quantiles (linear between the sorted training values,
  so point masses such as "0 voice-mail messages" keep their share), below which its missing rate sits. An
  integer-valued column stays integer, the others keep their decimals. Each training value gets a normal
  score: the standard normal quantile of its rank, drawn uniformly within a run of ties;
- **the categorical profiles**: a generated customer takes all its categorical cells (a missing cell being a
  level of its own) from one training customer drawn at random, so level shares and every combination of
  levels are the training rows'. No customer gets a combination of services real customers never have;
- **the numerical columns given the profile**: a Gaussian copula whose mean and spread depend on the profile.
  The normal scores are regressed on the categorical levels (ridge, main effects of one-hot levels), and so
  are the logarithms of the squared residuals; a customer's scores are its profile's fitted mean plus its
  fitted spread times a normal residual correlated as the training residuals are, mapped back through each
  column's quantiles. Levels thus shift and narrow the numbers (customers without internet all pay about the
  same low bill, fiber customers more), with no assumption on the order of the levels, and the numbers keep
  their correlations (minutes with charges, tenure with total charges). A product is kept only loosely: the
  Telco-shaped data's TotalCharges / (tenure x MonthlyCharges) has its median, 1.0, but spreads over
  0.45-2.2 (5th-95th percentiles) where the training rows' spreads over 0.89-1.12;
- **structural zeros**: ranges of a numerical column's values (missing, a frequent value, or neighbouring
  deciles of the others) that a categorical level's training rows never reach although independence would
  put at least 15 of them there: "no voice-mail plan" with messages, no internet with a fiber bill. A
  generated customer whose numbers fall in one gets new numbers (at most 100 times);
- **the outcome model**: scikit-learn's ``HistGradientBoostingClassifier`` on the training rows (numbers with
  their missing values, categorical levels as categories): flexible enough to keep the data's interactions, so
  that simulated churners are about as predictable as real ones, and never the model under test, because the
  platform cannot serve it (it does not convert to ONNX; ``../shared/NOTES.md``), so no candidate is this model.
  Each generated customer churns with the probability it gives, drawn with the caller's seeded generator; its
  label is the schema's ``positive_label`` or else the training target's most frequent other label.

Why not a Gaussian copula over every column, categorical levels being intervals of the normal by their shares
(SDV's ``GaussianCopulaSynthesizer``)? A copula cannot forbid a combination: fitted on the Telco-shaped test
data it gave 27% of the customers impossible services (fiber optic with "No internet service", no phone with
a second line), and drawing those rows again distorted the shares (no phone service 9% -> 3%, churn 26% ->
30%). Drawing real profiles keeps the categorical joint exact; the copula keeps the numbers new, so that a
generated customer is no copy of a training customer. All of it is numpy, scipy and scikit-learn: SDV and
its dependencies are too heavy for a Lambda layer.

Fitting is seeded (the draws within ties). Generation is vectorised; :meth:`CustomerGenerator.write_csv`
streams in chunks, so memory stays bounded for any row count. Generated ids are ``<id_prefix><number>``; a
prefix that starts a training id is refused.

Command line (the bench's million telecom customers)::

    python -m mlops.pilot.synthetic --data data/telecom_churn.csv --schema data/telecom_churn.schema.json \\
        --rows 1000000 --seed 7 --output out/bench/data/synthetic.csv
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit, ndtr, ndtri
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops.data.dataset import labels, read_dataset
from mlops.data.schema import DataSchema

DEFAULT_ID_PREFIX = "SYN-"
_ID_DIGITS = 7  # zero-padded: ids sort in order up to 9,999,999 and stay unique beyond
_MISSING_LEVEL = "\x00missing"  # a missing categorical cell as a level of its own
_RIDGE = 25.0  # a level with this many training rows keeps half of its own effect on the numbers
_STRUCTURAL_ZERO_ROWS = 15.0  # never seen together although independence expects at least this many rows
_BINS = 10  # a numerical column's values other than its frequent ones, in deciles, for the structural zeros
_CALIBRATION_ROWS = 20_000  # generated customers the outcome model's class balance is set on
_REDRAWS = 100  # after which a customer keeps its numbers even if they fall in a structural zero
_MAX_DECIMALS = 6


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)


def _categorical_cells(values: pd.Series) -> np.ndarray:
    """Text cells; a missing one as `_MISSING_LEVEL`."""
    cells = values.to_numpy(dtype=object)
    text = cells if pd.api.types.is_string_dtype(values) else cells.astype(str)
    return np.where(pd.isna(cells), _MISSING_LEVEL, text).astype(object)


def _matrix(columns: list[np.ndarray], rows: int, dtype: type) -> np.ndarray:
    """The columns side by side (rows x columns), also when there are none."""
    return np.stack(columns, axis=1).astype(dtype) if columns else np.empty((rows, 0), dtype=dtype)


def _decimals(values: np.ndarray) -> int | None:
    """Fewest decimals that write every value exactly (0: integers); None beyond six."""
    for decimals in range(_MAX_DECIMALS + 1):
        scaled = values * 10.0**decimals
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6 * 10.0**decimals):
            return decimals
    return None


@dataclass(frozen=True)
class _NumericalMarginal:
    """Missing rate, sorted observed values (duplicates kept: point masses keep their share) and rounding."""

    name: str
    missing_rate: float
    sorted_values: np.ndarray
    decimals: int | None  # 0: an integer column

    @classmethod
    def fit(cls, name: str, values: np.ndarray) -> _NumericalMarginal:
        observed = np.sort(values[np.isfinite(values)])
        if observed.size == 0:
            raise ValueError(f"the numerical column {name!r} has no value in the training rows")
        return cls(name, 1 - observed.size / values.size, observed, _decimals(observed))

    def uniforms(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each value's place on the unit line: missing first, then by rank, uniformly within a run of ties."""
        size, kept = self.sorted_values.size, 1 - self.missing_rate
        below = self.missing_rate + kept * np.searchsorted(self.sorted_values, values, side="left") / size
        through = self.missing_rate + kept * np.searchsorted(self.sorted_values, values, side="right") / size
        missing = np.isnan(values)
        lower, upper = np.where(missing, 0.0, below), np.where(missing, self.missing_rate, through)
        return lower + (upper - lower) * rng.random(values.size)

    def values(self, uniform: np.ndarray) -> np.ndarray:
        """The inverse: NaN below the missing rate, else the interpolated quantile (rounded)."""
        size = self.sorted_values.size
        within = (uniform - self.missing_rate) / (1 - self.missing_rate)
        numbers = np.interp(within, (np.arange(size) + 0.5) / size, self.sorted_values)
        if self.decimals is not None:
            numbers = np.round(numbers, self.decimals)
        numbers[uniform < self.missing_rate] = np.nan
        return numbers

    def series(self, numbers: np.ndarray) -> pd.Series:
        if self.decimals == 0:
            return pd.Series(numbers).astype("int64" if self.missing_rate == 0 else "Int64")
        return pd.Series(numbers)


@dataclass(frozen=True)
class _ValueClasses:
    """A numerical column's values in classes, in the order of the values: 0 missing, then alternately the open
    gap below a point and the point itself, the points being the column's frequent values and the decile
    edges of its other values."""

    column: int
    points: np.ndarray  # sorted, never empty (the column has a value: see _NumericalMarginal.fit)

    @classmethod
    def fit(cls, column: int, values: np.ndarray) -> _ValueClasses:
        distinct, counts = np.unique(values[np.isfinite(values)], return_counts=True)
        frequent = counts >= _STRUCTURAL_ZERO_ROWS
        others = np.repeat(distinct[~frequent], counts[~frequent])
        edges = np.quantile(others, np.linspace(0, 1, _BINS + 1)[1:-1]) if others.size else np.empty(0)
        return cls(column, np.unique(np.concatenate([distinct[frequent], edges])))

    @property
    def count(self) -> int:
        return 2 + 2 * self.points.size

    def of(self, numbers: np.ndarray) -> np.ndarray:
        values = numbers[:, self.column]
        position = np.searchsorted(self.points, values)
        at_point = self.points[np.minimum(position, self.points.size - 1)] == values
        return np.where(np.isnan(values), 0, 1 + 2 * position + at_point)


@dataclass(frozen=True)
class _StructuralZero:
    """Ranges of a numerical column's values that rows of some levels of a categorical column never have."""

    categorical: int  # the column's position among the categorical columns
    values: _ValueClasses
    forbidden: np.ndarray  # boolean, levels x value classes

    def violated(self, codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        return self.forbidden[codes[:, self.categorical], self.values.of(numbers)]


def _empty_runs(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per level, the runs of neighbouring value classes (missing on its own) that hold no training row although
    independence expects at least `_STRUCTURAL_ZERO_ROWS` in the run: a range of values never seen with the
    level, however finely the range is cut into classes."""
    forbidden = np.zeros(observed.shape, dtype=bool)
    forbidden[:, 0] = (observed[:, 0] == 0) & (expected[:, 0] >= _STRUCTURAL_ZERO_ROWS)
    for level in range(observed.shape[0]):
        empty = np.concatenate([[0], (observed[level, 1:] == 0).astype(np.int8), [0]])
        changes = np.flatnonzero(np.diff(empty))
        for start, stop in zip(changes[::2] + 1, changes[1::2] + 1, strict=True):
            if expected[level, start:stop].sum() >= _STRUCTURAL_ZERO_ROWS:
                forbidden[level, start:stop] = True
    return forbidden


def _structural_zeros(codes: np.ndarray, numbers: np.ndarray) -> list[_StructuralZero]:
    """Every categorical column's levels against every numerical column: the ranges of values a level never
    has although independence would give it many rows there."""
    rows = numbers.shape[0]
    zeros = []
    for column in range(numbers.shape[1]):
        values = _ValueClasses.fit(column, numbers[:, column])
        classes = values.of(numbers)
        for categorical in range(codes.shape[1]):
            observed = np.zeros((codes[:, categorical].max() + 1, values.count))
            np.add.at(observed, (codes[:, categorical], classes), 1)
            forbidden = _empty_runs(observed, np.outer(observed.sum(axis=1), observed.sum(axis=0)) / rows)
            if forbidden.any():
                zeros.append(_StructuralZero(categorical, values, forbidden))
    return zeros


def _one_hot(codes: np.ndarray, counts: list[int]) -> np.ndarray:
    """One-hot levels of every categorical column (rows x levels); a code of -1 (unknown level) has none."""
    columns = [codes[:, [k]] == np.arange(count) for k, count in enumerate(counts)]
    return np.hstack(columns).astype(np.float64) if columns else np.zeros((codes.shape[0], 0))


def _ridge_fit(design: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Fitted values of a ridge regression of `targets` on `design` (centred here; the intercept unpenalised)."""
    centred = design - design.mean(axis=0)
    weights = np.linalg.solve(centred.T @ centred + _RIDGE * np.eye(centred.shape[1]), centred.T @ targets)
    return centred @ weights + targets.mean(axis=0)


@dataclass(frozen=True)
class _OutcomeModel:
    """The simulation's churn model (see the module's docstring): gradient-boosted trees on the numbers (missing
    values handled natively) and the categorical codes (as categories, a level not seen in training as none)."""

    classifier: HistGradientBoostingClassifier
    logit_shift: float = 0.0  # set by `calibrated`

    @classmethod
    def fit(cls, numbers: np.ndarray, codes: np.ndarray, level_counts: list[int], churned: np.ndarray) -> _OutcomeModel:
        categorical = np.r_[np.zeros(numbers.shape[1], bool), np.ones(codes.shape[1], bool)]
        classifier = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=300,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            categorical_features=categorical if categorical.any() else None,
            random_state=0,
        )
        return cls(classifier.fit(_design(numbers, codes), churned))

    def probability(self, numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
        raw = np.clip(self.classifier.predict_proba(_design(numbers, codes))[:, 1], 1e-9, 1 - 1e-9)
        return expit(logit(raw) + self.logit_shift)

    def calibrated(self, numbers: np.ndarray, codes: np.ndarray, churn_rate: float) -> _OutcomeModel:
        """The model shifted on the logit scale so that customers like these (generated ones) churn at
        `churn_rate`: trees trained on real rows, asked about new combinations of values, drift off the class
        balance; a shift keeps their ranking and restores the balance."""
        raw = logit(np.clip(self.classifier.predict_proba(_design(numbers, codes))[:, 1], 1e-9, 1 - 1e-9))
        shift = brentq(lambda delta: float(expit(raw + delta).mean()) - churn_rate, -10.0, 10.0)
        return replace(self, logit_shift=float(shift))


def _design(numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Numbers, then codes (an unknown level, -1, as missing: the trees send it with the missing values)."""
    return np.hstack([numbers, np.where(codes >= 0, codes, np.nan).astype(np.float64)])


@dataclass(frozen=True)
class CustomerGenerator:
    """Fitted on a data set's training rows: draws new customers and tells each one's churn probability."""

    DESCRIPTION: ClassVar[str] = (
        "Customers drawn from a generator fitted on the training split only: categorical profiles of training "
        "customers, numerical columns from a Gaussian copula conditional on the profile (empirical quantiles, "
        "missing rates and correlations kept), churn drawn from the generator's own gradient-boosted "
        "model (one the platform never serves), not from the model under test."
    )

    schema: DataSchema
    columns: list[str]  # the generated frame's: id, features and target, in the training frame's order
    numerical: list[_NumericalMarginal]
    levels: list[np.ndarray]  # per categorical column, its levels (`_MISSING_LEVEL` for missing) by code
    profile_codes: np.ndarray  # the training rows' categorical levels (rows x categorical columns)
    profile_means: np.ndarray  # the normal scores' fitted mean per training profile (rows x numerical columns)
    profile_scales: np.ndarray  # and their residuals' fitted spread
    residual_cholesky: np.ndarray  # of the standardised residuals' covariance
    structural_zeros: list[_StructuralZero]
    outcome: _OutcomeModel
    target_labels: tuple[str, str]  # (negative, positive)
    training_ids: pd.Series

    @classmethod
    def fit(cls, training: pd.DataFrame, schema: DataSchema, seed: int = 0) -> CustomerGenerator:
        """Learn the features' distribution and a churn model from the training rows only (the frame as
        :func:`mlops.data.dataset.read_dataset` reads it). `seed` places tied values within their ties."""
        absent = [column for column in [*schema.feature_columns, schema.target] if column not in training.columns]
        if absent:
            raise ValueError(f"the training rows lack the schema's columns {absent}")
        churned = labels(training, schema)
        if churned.min() == churned.max():
            raise ValueError("the training rows need both churned and retained customers")
        rng = np.random.default_rng(seed)
        rows = len(training)
        numbers = _matrix([_numbers(training[name]) for name in schema.numerical], rows, np.float64)
        marginals = [_NumericalMarginal.fit(name, numbers[:, k]) for k, name in enumerate(schema.numerical)]
        uniforms = [marginal.uniforms(numbers[:, k], rng) for k, marginal in enumerate(marginals)]
        scores = ndtri(np.clip(_matrix(uniforms, rows, np.float64), 1e-9, 1 - 1e-9))

        factorised = [pd.factorize(_categorical_cells(training[name]), sort=True) for name in schema.categorical]
        codes = _matrix([column_codes for column_codes, _ in factorised], rows, np.int64)
        levels = [np.asarray(column_levels, dtype=object) for _, column_levels in factorised]
        counts = [column_levels.size for column_levels in levels]

        design = _one_hot(codes, counts)
        profile_means = _ridge_fit(design, scores)
        residuals = scores - profile_means
        log_variance = _ridge_fit(design, np.log(residuals**2 + 1e-6))
        log_variance += np.log(np.mean(residuals**2 / np.exp(log_variance), axis=0))  # unit standardised variance
        profile_scales = np.exp(log_variance / 2)
        standardised = residuals / profile_scales
        covariance = standardised.T @ standardised / rows + 1e-9 * np.eye(scores.shape[1])

        target = training[schema.target].astype(str).str.strip()
        negative = str(target[churned == 0].value_counts().index[0])
        wanted = {schema.id_column, *schema.feature_columns, schema.target}
        columns = [column for column in training.columns if column in wanted]
        if schema.id_column not in columns:
            columns.insert(0, schema.id_column)
        ids = training[schema.id_column] if schema.id_column in training.columns else pd.Series([], dtype=object)
        generator = cls(
            schema=schema,
            columns=columns,
            numerical=marginals,
            levels=levels,
            profile_codes=codes,
            profile_means=profile_means,
            profile_scales=profile_scales,
            residual_cholesky=np.linalg.cholesky(covariance),
            structural_zeros=_structural_zeros(codes, numbers),
            outcome=_OutcomeModel.fit(numbers, codes, counts, churned),
            target_labels=(negative, schema.positive_label),
            training_ids=ids.dropna().astype(str),
        )
        # The outcome model calibrated on generated customers to the training churn rate (seeded sample).
        sample = np.random.default_rng(seed).integers(0, codes.shape[0], _CALIBRATION_ROWS)
        numbers_sample = generator._numbers(sample, np.random.default_rng(seed + 1))
        outcome = generator.outcome.calibrated(numbers_sample, codes[sample], float(churned.mean()))
        return replace(generator, outcome=outcome)

    def generate(
        self, rows: int, rng: np.random.Generator, id_prefix: str = DEFAULT_ID_PREFIX, first_number: int = 1
    ) -> pd.DataFrame:
        """`rows` new customers: ids `<id_prefix><number>` from `first_number` on, the features (numerical
        columns as numbers, integer columns as integers; categorical ones as text, None if missing) and the
        target, drawn from :meth:`churn_probability`. The same generator state gives the same rows."""
        if self.training_ids.str.startswith(id_prefix).any():
            raise ValueError(f"the id prefix {id_prefix!r} starts real customer ids: choose another one")
        profiles = rng.integers(0, self.profile_codes.shape[0], rows)
        codes = self.profile_codes[profiles]
        numbers = self._numbers(profiles, rng)
        churned = rng.random(rows) < self.outcome.probability(numbers, codes)

        data: dict[str, object] = {}
        for k, marginal in enumerate(self.numerical):
            data[marginal.name] = marginal.series(numbers[:, k])
        for k, name in enumerate(self.schema.categorical):
            cells = self.levels[k][codes[:, k]]
            data[name] = np.where(cells == _MISSING_LEVEL, None, cells)
        ids = [f"{id_prefix}{number:0{_ID_DIGITS}d}" for number in range(first_number, first_number + rows)]
        data[self.schema.id_column] = np.array(ids, dtype=object)
        data[self.schema.target] = np.where(churned, self.target_labels[1], self.target_labels[0]).astype(object)
        return pd.DataFrame(data)[self.columns]

    def churn_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """The simulation's truth: each customer's churn probability under the generator's own outcome model
        (a level the training rows did not have counts as none of theirs)."""
        numbers = _matrix([_numbers(frame[m.name]) for m in self.numerical], len(frame), np.float64)
        codes = [
            pd.Index(levels).get_indexer(_categorical_cells(frame[name]))
            for name, levels in zip(self.schema.categorical, self.levels, strict=True)
        ]
        return self.outcome.probability(numbers, _matrix(codes, len(frame), np.int64))

    def write_csv(
        self, path: Path, rows: int, seed: int, id_prefix: str = DEFAULT_ID_PREFIX, chunk_rows: int = 100_000
    ) -> None:
        """Stream `rows` customers to `path`, `chunk_rows` at a time (bounded memory), numbered from 1."""
        rng = np.random.default_rng(seed)
        with path.open("w", newline="") as handle:
            for start in range(0, rows, chunk_rows):
                chunk = self.generate(min(chunk_rows, rows - start), rng, id_prefix, first_number=start + 1)
                chunk.to_csv(handle, header=start == 0, index=False, lineterminator="\n")

    def _numbers(self, profiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Numerical values for the drawn profiles; those in a structural zero are drawn again."""
        numbers = np.empty((profiles.size, len(self.numerical)))
        pending = np.arange(profiles.size)
        for _ in range(_REDRAWS):
            drawn = profiles[pending]
            residuals = rng.standard_normal((pending.size, len(self.numerical))) @ self.residual_cholesky.T
            uniform = ndtr(self.profile_means[drawn] + self.profile_scales[drawn] * residuals)
            for k, marginal in enumerate(self.numerical):
                numbers[pending, k] = marginal.values(uniform[:, k])
            violated = np.zeros(pending.size, dtype=bool)
            for zero in self.structural_zeros:
                violated |= zero.violated(self.profile_codes[drawn], numbers[pending])
            pending = pending[violated]
            if pending.size == 0:
                break
        return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write customers like a churn data set's to a CSV, from a generator fitted on its rows."
    )
    parser.add_argument("--data", type=Path, required=True, help="the data set's CSV the generator is fitted on")
    parser.add_argument("--schema", type=Path, required=True, help="its schema JSON")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42, help="seeds the fit and the generation")
    parser.add_argument("--id-prefix", default=DEFAULT_ID_PREFIX)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    schema = DataSchema.from_file(args.schema)
    generator = CustomerGenerator.fit(read_dataset(args.data, schema, require_target=True), schema, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    generator.write_csv(args.output, args.rows, args.seed, args.id_prefix)
    print(f"Wrote {args.rows:,} synthetic customers to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
