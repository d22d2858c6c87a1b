"""Helpers and fixtures shared by every test directory (registered in tests/conftest.py)."""
