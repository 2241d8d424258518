"""The tamper-evident audit trail and what each component writes to it.

Append-only, hash-chained logs on DynamoDB with periodic digests in S3: the events and their sealed records
(`records`), the queue every function sends its events to (`queue`), the writer that drains it into the chains
(`writer`), the table they are stored in (`table`), appending to a chain (`trail`), where a chain breaks
(`integrity`), verifying chains (`verification`), the digests in S3 (`digests`), queries across chains (`queries`),
and the events each component writes (`events`).
"""
