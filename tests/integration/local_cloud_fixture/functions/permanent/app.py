"""Always fails with PermanentError (a Catch target in the state machine, a 502 behind the API)."""


class PermanentError(Exception):
    pass


def handler(event, context):
    raise PermanentError("this step can never succeed")
