"""Reports of sweeps: the paper's tables beside measured ones, verdicts, tests, figures."""

from sweeps.records.collect import (
    RunRecord,
    SweepRuns,
    checkpoint_path,
    collect,
    collect_confirmation,
)
from sweeps.report.aggregate import CellStats, Comparison, Difference, Verdict, holm, verdict
from sweeps.report.analysis import Analysis, Confirmation, analyze, confirm
from sweeps.report.build import Report, build_report
from sweeps.report.effects import Effect, EffectSet, Scale, effect_verdict

__all__ = [
    "Analysis",
    "CellStats",
    "Comparison",
    "Confirmation",
    "Difference",
    "Effect",
    "EffectSet",
    "Report",
    "RunRecord",
    "Scale",
    "SweepRuns",
    "Verdict",
    "analyze",
    "build_report",
    "checkpoint_path",
    "collect",
    "collect_confirmation",
    "confirm",
    "effect_verdict",
    "holm",
    "verdict",
]
