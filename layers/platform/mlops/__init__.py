"""Domain package of the serverless MLOps platform: schema, features, inference and training helpers."""
