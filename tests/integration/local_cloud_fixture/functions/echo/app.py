"""Returns what it sees (some env vars and the event); answers API Gateway proxy events too."""

import json
import os

INVOCATIONS = 0  # module state: survives warm invocations, not a new execution environment


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    seen = {
        "env": {
            name: os.environ.get(name)
            for name in ("GREETING", "ITEMS_TABLE", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "HOST_ONLY")
        },
        "event": event,
        "invocations": INVOCATIONS,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    if event.get("return_a_set"):
        return {1, 2}  # not JSON: Lambda fails such an invocation with Runtime.MarshalError
    if "httpMethod" not in event:
        return seen
    if event["path"].endswith("/malformed"):
        return {"statusCode": 200, "body": {"not": "a string"}}
    return {
        "statusCode": 201 if event["httpMethod"] == "PUT" else 200,
        "headers": {"Content-Type": "application/json", "X-Item": str(event["pathParameters"])},
        "body": json.dumps(seen),
    }
