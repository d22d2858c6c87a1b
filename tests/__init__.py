"""Signoff's test suite (a package so shared doubles import as ``tests.fakes``)."""
