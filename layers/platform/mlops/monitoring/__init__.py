"""Monitoring: inference capture and outcomes, drift, the scheduled monitor."""
