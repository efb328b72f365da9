"""Reports of sweeps: the paper's tables beside measured ones, verdicts, tests, figures."""

from sweeps.report.aggregate import (
    Analysis,
    CellStats,
    Comparison,
    Confirmation,
    Difference,
    Verdict,
    analyze,
    confirm,
    holm,
    verdict,
)
from sweeps.report.build import Report, build_report
from sweeps.report.collect import (
    RunRecord,
    SweepRuns,
    checkpoint_path,
    collect,
    collect_confirmation,
)
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
