"""Local cloud: the SAM application on moto's in-process AWS, with no Docker and no AWS account.

- `stack.deploy_template`: SAM transform + moto CloudFormation + Step Functions state machines.
- `lambda_runtime.InProcessLambdaRuntime`: runs the real handlers in-process (and behind moto's Lambda).
- `api_server.ApiGatewayApp` / `serve`: API Gateway's REST proxy integration as a WSGI app.
- `platform.LocalPlatform`: all of the above in one context manager.
"""

from local_cloud.api_server import ApiGatewayApp, serve
from local_cloud.lambda_runtime import InProcessLambdaRuntime, Invocation, LambdaContext
from local_cloud.platform import ExecutionResult, LocalPlatform, StateEvent
from local_cloud.stack import DeployedStack, FunctionSpec, deploy_template

__all__ = [
    "ApiGatewayApp",
    "DeployedStack",
    "ExecutionResult",
    "FunctionSpec",
    "InProcessLambdaRuntime",
    "Invocation",
    "LambdaContext",
    "LocalPlatform",
    "StateEvent",
    "deploy_template",
    "serve",
]
