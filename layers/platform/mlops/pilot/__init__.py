"""The churn pilot, a client of the platform: its steps, campaign, report and synthetic data."""
