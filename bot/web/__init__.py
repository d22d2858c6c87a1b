"""The HTTP service beside Slack: the REST API (``/api``), webhooks, OpenAPI, health, metrics."""
