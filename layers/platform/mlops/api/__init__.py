"""The HTTP API's contracts and the REST resolver every API handler uses."""
