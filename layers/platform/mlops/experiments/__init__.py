"""A/B testing: experiment definitions, deterministic assignment, exposure and outcome storage, statistics.

Importing a submodule imports only what it needs: `assignment` and `serving` (the scoring path) never import
scipy, which only `statistics`, `analysis` and `campaign` use (the experiments function's StatsLayer).
"""
