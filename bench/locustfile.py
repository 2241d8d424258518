"""HTTP load on the local API (`make serve`): POST /predict with every feature of held-out telecom customers,
each simulated client sending one request a second (`make bench` starts 200 of them: 200 requests/s)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from locust import HttpUser, constant_throughput, task

DATA = Path(__file__).resolve().parents[1] / "data" / "telecom_churn.csv"
TEXT_COLUMNS = {"customer_id", "state", "area_code", "international_plan", "voice_mail_plan", "churn"}


def _payloads() -> list[dict[str, object]]:
    with DATA.open() as handle:
        rows = list(csv.DictReader(handle))[:500]
    return [
        {
            "customer_id": row["customer_id"],
            "features": {
                k: (v if k in TEXT_COLUMNS else float(v)) for k, v in row.items() if k not in {"customer_id", "churn"}
            },
        }
        for row in rows
    ]


PAYLOADS = _payloads()


class ScoringClient(HttpUser):
    wait_time = constant_throughput(1)

    @task
    def predict(self) -> None:
        self.client.post("/predict", json=random.choice(PAYLOADS), name="POST /predict")
