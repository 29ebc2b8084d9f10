"""Fixtures shared by the tests that run real `dragon` processes."""

from tests.integration.test_ingest_processes import launch, process_tests_database

__all__ = ["launch", "process_tests_database"]
