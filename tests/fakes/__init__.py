"""Test doubles for Slack: a fake Web API server, Block Kit checks, and signed inbound requests."""
