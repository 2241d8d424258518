"""The approval policy and the registry's decision: automatic approval only when every check passes and no
metric is worse than production's beyond the margin; a decision is taken once, and only approved versions
deploy."""

from __future__ import annotations

import pytest

from mlops.registry.approval import ApprovalPolicy, decide_approval

CANDIDATE = {"roc_auc": 0.93, "pr_auc": 0.90, "recall": 0.85, "accuracy": 0.97}
CHECKS = {"quality_targets": True, "onnx_parity": True}


def test_a_first_model_passing_every_check_is_approved_automatically() -> None:
    decision = decide_approval(CANDIDATE, CHECKS, None, None, ApprovalPolicy())
    assert decision.approved
    assert decision.by == "policy:auto-approval"
    assert "no version in production to compare with" in decision.reasons


def test_a_small_drop_within_the_margin_is_approved() -> None:
    production = {**CANDIDATE, "roc_auc": 0.935}
    decision = decide_approval(CANDIDATE, CHECKS, "v1", production, ApprovalPolicy(max_metric_drop=0.01))
    assert decision.approved
    assert any("roc_auc 0.9300 vs production 0.9350" in r for r in decision.reasons)


@pytest.mark.parametrize(
    ("production", "checks", "policy", "reason"),
    [
        ({**CANDIDATE, "recall": 0.90}, CHECKS, ApprovalPolicy(), "recall is 0.0500 below production v1"),
        (CANDIDATE, {**CHECKS, "onnx_parity": False}, ApprovalPolicy(), "check onnx_parity failed"),
        (CANDIDATE, CHECKS, ApprovalPolicy(auto_approve=False), "automatic approval is off"),
    ],
)
def test_otherwise_a_human_decides_and_the_reasons_say_why(
    production: dict[str, float], checks: dict[str, bool], policy: ApprovalPolicy, reason: str
) -> None:
    decision = decide_approval(CANDIDATE, checks, "v1", production, policy)
    assert not decision.approved
    assert any(reason in r for r in decision.reasons)
