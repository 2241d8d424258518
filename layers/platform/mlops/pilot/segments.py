"""The customer segments the pilot's model card reports metrics for: the international plan and the Census region
of the customer's state, on the telecom data set.

The platform computes the metrics (:func:`mlops.registry.segments.segment_metrics`); which groupings matter is
this use case's knowledge, passed to :func:`mlops.registry.model_card.build_model_card` as its `segments`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops.data.schema import DataSchema
from mlops.registry.segments import is_missing, small_categorical_segments

UNKNOWN_REGION = "Unknown"

# US Census Bureau regions (https://www2.census.gov/geo/pdfs/maps-data/maps/reference/us_regdiv.pdf);
# the District of Columbia belongs to the South Atlantic division.
CENSUS_REGIONS: dict[str, tuple[str, ...]] = {
    "Northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"),
    "Midwest": ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "South": (
        *("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV"),
        *("AL", "KY", "MS", "TN"),
        *("AR", "LA", "OK", "TX"),
    ),
    "West": ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"),
}
STATE_REGIONS: dict[str, str] = {state: region for region, states in CENSUS_REGIONS.items() for state in states}


def state_region(state: object) -> str | None:
    """The Census region of a US state code (None for a missing value, `Unknown` for an unknown code)."""
    if is_missing(state):
        return None
    return STATE_REGIONS.get(str(state).strip().upper(), UNKNOWN_REGION)


def telecom_segments(frame: pd.DataFrame, schema: DataSchema) -> dict[str, np.ndarray]:
    """The groupings the card reports metrics for, one value per row of `frame`.

    Telecom-aware where the columns exist: `international_plan` (yes/no) and `state_region` (the `state`
    column mapped to Census regions, because 51 states leave most state segments too small to measure).
    Any other data set: :func:`mlops.registry.segments.small_categorical_segments`.
    """
    segments: dict[str, np.ndarray] = {}
    if "international_plan" in frame.columns:
        segments["international_plan"] = np.array(
            [None if is_missing(v) else str(v).strip().lower() for v in frame["international_plan"]], dtype=object
        )
    if "state" in frame.columns:
        segments["state_region"] = np.array([state_region(v) for v in frame["state"]], dtype=object)
    return segments or small_categorical_segments(frame, schema)
