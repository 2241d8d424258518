"""The feature store: feature groups, the online store (DynamoDB), the offline history (S3), ingestion."""
