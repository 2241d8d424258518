"""Function settings: what the template's environment variables must hold, checked at cold start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from helpers import load_template
from mlops.core.settings import ExperimentsSettings, ScoringSettings, load_settings
from mlops.pilot.settings import CampaignSettings, EnvironmentCheckSettings, PilotExperimentSettings, SmokeTestSettings

SCORING_ENV = {
    "MODEL_NAME": "churn",
    "REGISTRY_TABLE": "registry",
    "ARTIFACT_BUCKET": "artifacts",
    "AUDIT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/audit",
}


def test_scoring_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SCORING_ENV, "MODEL_REFRESH_SECONDS": "5"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(ScoringSettings)
    assert (settings.model_name, settings.registry_table, settings.artifact_bucket) == (
        "churn",
        "registry",
        "artifacts",
    )
    assert settings.model_refresh_seconds == 5.0


@pytest.mark.parametrize("missing", sorted(SCORING_ENV))
def test_a_missing_variable_fails_at_cold_start_naming_it(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name, value in SCORING_ENV.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(ValidationError, match=missing.lower()):
        load_settings(ScoringSettings)


def test_a_negative_refresh_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SCORING_ENV, "MODEL_REFRESH_SECONDS": "-1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="model_refresh_seconds"):
        load_settings(ScoringSettings)


@pytest.mark.parametrize(
    ("function", "settings_type"),
    [
        ("ScoringFunction", ScoringSettings),
        ("ValidateEnvironmentFunction", EnvironmentCheckSettings),
        ("SmokeTestFunction", SmokeTestSettings),
        ("ExperimentsFunction", ExperimentsSettings),
        ("StartExperimentFunction", PilotExperimentSettings),
        ("RetentionCampaignFunction", CampaignSettings),
    ],
)
def test_the_template_gives_each_function_every_setting_it_needs(function: str, settings_type: type) -> None:
    # Given the variables the template sets for the function (its own and the globals)
    template = load_template()
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"][function]["Properties"]["Environment"]["Variables"],
    }
    # Then every required field of its settings model is among them
    required = {name.upper() for name, field in settings_type.model_fields.items() if field.is_required()}
    assert required <= set(variables)


def test_the_scoring_function_is_told_where_the_running_experiment_is() -> None:
    # Without EXPERIMENTS_TABLE scoring would never serve a variant: the setting is optional, the template sets it
    variables = load_template()["Resources"]["ScoringFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["EXPERIMENTS_TABLE"] == {"Ref": "ExperimentsTable"}
