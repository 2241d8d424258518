"""Start awslambdaric with the import path of Lambda's Python runtime: the function's code, then the layers
(/opt/python/lib/python3.13/site-packages, /opt/python), then this directory (awslambdaric, boto3)."""

import os
import site
import sys

import awslambdaric.__main__

task_root = os.environ["LAMBDA_TASK_ROOT"]
layer_dirs = [f"/opt/python/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages", "/opt/python"]
if "PYTHONPATH" not in os.environ:  # as in Lambda: a PYTHONPATH set by the user replaces the layer directories
    sys.path[:0] = layer_dirs
sys.path.insert(0, task_root)
site.addsitedir(task_root)  # .pth files in the deployment package
awslambdaric.__main__.main([sys.argv[0], os.environ["_HANDLER"]])
