"""Signoff's Slack adapter: renders approval requests and turns Slack interactions into resumes."""
