"""The process-launching fixture the ingestion process tests use, shared here."""

from tests.integration.test_ingest_processes import launch

__all__ = ["launch"]
