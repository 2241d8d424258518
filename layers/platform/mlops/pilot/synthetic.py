"""Synthetic telecom customers at any size, mimicking the real data's distributions and churn relationships.

The generator is fitted on the real file (`data/telecom_churn.csv`):
- categorical columns are drawn from their observed frequencies;
- minutes and calls per period from normal distributions with the observed mean and spread (clipped at 0,
  calls rounded), and each charge as minutes times that period's observed tariff, as in the real bills;
- voice-mail messages only for voice-mail plan holders, from the holders' observed counts;
- account length and service calls from their observed values;
- churn from a gradient-boosting model trained on the real file: each synthetic customer churns with the
  probability the model gives its features, so the relationships (service calls, international plan, day
  minutes...) carry over, and so does the class balance (about 14%).
Generation is vectorised and streamed in chunks, so memory stays bounded whatever the row count.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

PERIODS = ("day", "eve", "night", "intl")
YES_NO = ("international_plan", "voice_mail_plan")
_CHURN_INPUTS = [
    "account_length",
    "number_vmail_messages",
    *(f"total_{p}_{m}" for p in PERIODS for m in ("minutes", "calls")),
    "number_customer_service_calls",
    *YES_NO,
]


@dataclass
class SyntheticTelecomGenerator:
    columns: list[str]
    categorical: dict[str, tuple[np.ndarray, np.ndarray]]  # values, probabilities
    normal: dict[str, tuple[float, float]]  # mean, std
    tariffs: dict[str, float]  # charge per minute by period
    empirical: dict[str, np.ndarray]  # observed values to resample
    churn_model: GradientBoostingClassifier
    churn_labels: tuple[str, str]  # (negative, positive)

    @classmethod
    def fit(
        cls, reference: pd.DataFrame, target: str = "churn", positive_label: str = "yes"
    ) -> SyntheticTelecomGenerator:
        categorical = {}
        for column in ("state", "area_code", *YES_NO):
            counts = reference[column].value_counts(normalize=True)
            categorical[column] = (counts.index.to_numpy(dtype=object), counts.to_numpy())
        normal = {
            f"total_{p}_{m}": (float(reference[f"total_{p}_{m}"].mean()), float(reference[f"total_{p}_{m}"].std()))
            for p in PERIODS
            for m in ("minutes", "calls")
        }
        tariffs = {
            p: float((reference[f"total_{p}_charge"] / reference[f"total_{p}_minutes"].replace(0, np.nan)).median())
            for p in PERIODS
        }
        holders = reference.loc[reference["voice_mail_plan"] == "yes", "number_vmail_messages"]
        empirical = {
            "account_length": reference["account_length"].to_numpy(),
            "number_customer_service_calls": reference["number_customer_service_calls"].to_numpy(),
            "vmail_messages_of_holders": holders.to_numpy(),
        }
        negative = next(v for v in reference[target].unique() if v != positive_label)
        model = GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=0.1, random_state=0)
        model.fit(_churn_matrix(reference), (reference[target] == positive_label).to_numpy())
        return cls(list(reference.columns), categorical, normal, tariffs, empirical, model, (negative, positive_label))

    def generate(self, rows: int, rng: np.random.Generator, first_id: int = 1) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for column, (values, probabilities) in self.categorical.items():
            data[column] = rng.choice(values, size=rows, p=probabilities)
        data["account_length"] = rng.choice(self.empirical["account_length"], size=rows)
        holders = data["voice_mail_plan"] == "yes"
        data["number_vmail_messages"] = np.where(
            holders, rng.choice(self.empirical["vmail_messages_of_holders"], size=rows), 0
        )
        for period in PERIODS:
            mean, std = self.normal[f"total_{period}_minutes"]
            minutes = np.round(np.clip(rng.normal(mean, std, rows), 0, None), 1)
            data[f"total_{period}_minutes"] = minutes
            mean, std = self.normal[f"total_{period}_calls"]
            data[f"total_{period}_calls"] = np.clip(np.round(rng.normal(mean, std, rows)), 0, None).astype(int)
            data[f"total_{period}_charge"] = np.round(minutes * self.tariffs[period], 2)
        data["number_customer_service_calls"] = rng.choice(self.empirical["number_customer_service_calls"], size=rows)
        frame = pd.DataFrame(data)
        churn_probability = self.churn_model.predict_proba(_churn_matrix(frame))[:, 1]
        churned = rng.random(rows) < churn_probability
        frame["churn"] = np.where(churned, self.churn_labels[1], self.churn_labels[0])
        frame["customer_id"] = [f"S{i:09d}" for i in range(first_id, first_id + rows)]
        return frame[self.columns]

    def write_csv(self, path: Path, rows: int, seed: int, chunk_rows: int = 250_000) -> None:
        """Stream `rows` customers to `path`, `chunk_rows` at a time (bounded memory)."""
        rng = np.random.default_rng(seed)
        with path.open("w", newline="") as handle:
            for start in range(0, rows, chunk_rows):
                chunk = self.generate(min(chunk_rows, rows - start), rng, first_id=start + 1)
                chunk.to_csv(handle, header=start == 0, index=False)


def _churn_matrix(frame: pd.DataFrame) -> np.ndarray:
    matrix = frame[_CHURN_INPUTS].copy()
    for column in YES_NO:
        matrix[column] = (matrix[column] == "yes").astype(float)
    return matrix.to_numpy(dtype=float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate synthetic telecom churn customers.")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference", type=Path, default=Path("data/telecom_churn.csv"))
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    generator = SyntheticTelecomGenerator.fit(pd.read_csv(args.reference))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    generator.write_csv(args.output, args.rows, args.seed)
    print(f"Wrote {args.rows:,} synthetic customers to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
