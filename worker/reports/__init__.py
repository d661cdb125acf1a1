"""Batch reports: aggregates over validated results, written as JSON, CSV and one HTML page.

spec       FieldSpec, fields_from_schema  which fields to aggregate, and how
stats      TopCounter, NumberSummary      bounded-memory accumulators
aggregate  Aggregator                     result data -> per-field statistics
facts      JobFacts                       statuses, failures, attempts, tokens, cost
trends     compare                        tonight against previous nights' report.json
collect    collect_report                 one batch from the database -> report dict
build      build_report, ReportFiles      the service: writes the three files
"""

from worker.reports.aggregate import Aggregator
from worker.reports.build import ReportFiles, build_report, load_report
from worker.reports.facts import JobFacts
from worker.reports.spec import FieldSpec, fields_from_schema
from worker.reports.trends import compare

__all__ = [
    "Aggregator",
    "FieldSpec",
    "JobFacts",
    "ReportFiles",
    "build_report",
    "compare",
    "fields_from_schema",
    "load_report",
]
