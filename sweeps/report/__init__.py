"""Reports of sweeps: the paper's tables beside measured ones, verdicts, tests, figures."""

from sweeps.report.aggregate import Analysis, CellStats, Comparison, Verdict, analyze, verdict
from sweeps.report.build import Report, build_report
from sweeps.report.collect import RunRecord, SweepRuns, checkpoint_path, collect

__all__ = [
    "Analysis",
    "CellStats",
    "Comparison",
    "Report",
    "RunRecord",
    "SweepRuns",
    "Verdict",
    "analyze",
    "build_report",
    "checkpoint_path",
    "collect",
    "verdict",
]
