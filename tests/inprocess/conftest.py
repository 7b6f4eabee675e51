"""A private redis-server for the in-process tests (the portal tests' fixture, shared)."""

from tests.portal.conftest import redis_url  # noqa: F401 - the fixture, registered here
