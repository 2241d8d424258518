"""The model registry: versions and the production alias, approval, the model card."""
