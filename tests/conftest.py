"""Fixtures shared by every test; the running stack lives in tests/e2e/conftest.py."""
