"""Example workflows; load one with ``SIGNOFF_WORKFLOWS=examples.deploy_approval`` (run from
the repository root, where ``examples`` is importable)."""
