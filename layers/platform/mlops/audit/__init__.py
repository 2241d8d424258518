"""The tamper-evident audit trail and what each component writes to it."""
