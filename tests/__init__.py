"""The test suite; shared code is in :mod:`tests.support`."""
