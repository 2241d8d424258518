"""The model card's global importance of the input features: mean |TreeSHAP contribution| over the held-out
split.

Needs shap and scikit-learn (through the explainer): imported by the pilot's pipeline image only."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops.data.features import PreparedFeatures
from mlops.serving.tree_shap import TreeShapExplainer


def explainability_summary(explainer: TreeShapExplainer, prepared: PreparedFeatures) -> dict[str, Any]:
    """The model card's `explainability` section: global importance = mean |contribution| over ``prepared``
    (the held-out split), per input feature, largest first."""
    attributions = explainer.attribute(prepared)
    mean_abs = np.abs(attributions.contributions).mean(axis=0)
    ranked = sorted(zip(explainer.features, mean_abs, strict=True), key=lambda item: (-item[1], item[0]))
    additivity = explainer.base_value + attributions.contributions.sum(axis=1) - attributions.model_output
    return {
        "method": explainer.method,
        "output_space": explainer.output_space,
        "base_value": explainer.base_value,
        "global_importance": [{"feature": name, "mean_abs_contribution": float(value)} for name, value in ranked],
        "rows": len(attributions.model_output),
        "max_additivity_error": float(np.max(np.abs(additivity), initial=0.0)),
    }
