"""Simulation: the error rates of adding seeds by the group-sequential rule.

Each simulated row is a baseline and a row arm measured on the same seeds: the seed-driven part
of their values correlates ``rho`` across the arms, both spread ``sd`` points from seed to
seed, and the row is ``effect`` points higher. Each row runs under the rule of
:mod:`sweeps.report.sequential` (looks at the given seed counts, the last the declared
maximum; stop at the first look whose repeated confidence interval excludes 0) with a true
effect of 0 and with a true effect equal to the paper's. Printed per design:

- the rate of false "excludes 0" with no effect, with its Monte Carlo standard error (goal:
  at most 5%);
- how often the interval at the stop covers the paper's effect when that is the truth (goal:
  at least 95%), and the power (rows that excluded 0);
- the mean seeds per arm spent with and without an effect, against the seeds per arm a fixed
  design needs for the same power (paired t at the same level, :func:`sweeps.report.seeds.
  paired_power`).

Defaults are the PHEME sample's measured figures (appendix Table 6's best row: the paper's
effect +3.07 points, the baseline's seed spread 3.9 points, arms correlated about 0.6).

    .venv/bin/python bench/sequential_seeds.py [--rows 20000] [--seed 0] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import numpy as np  # noqa: E402

from sweeps.report.seeds import paired_power  # noqa: E402
from sweeps.report.sequential import Simulation, schedule, simulate  # noqa: E402

ALPHA = 0.05
#: (label, effect, seed spread, correlation, looks)
SCENARIOS = [
    ("PHEME Table 6, 3 to 12 seeds in rounds of 3", 3.07, 3.9, 0.6, schedule(3, 12)),
    ("PHEME Table 6, 3 to 12 seeds one at a time", 3.07, 3.9, 0.6, schedule(3, 12, 1)),
    ("PHEME Table 6, 3 to 20 seeds in rounds of 3", 3.07, 3.9, 0.6, schedule(3, 20)),
    ("weaker pairing (r 0.3), 3 to 20 in rounds of 3", 3.07, 3.9, 0.3, schedule(3, 20)),
    ("AG News Table 7 (+1.48, spread 2), 3 to 20", 1.48, 2.0, 0.6, schedule(3, 20)),
]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fixed_seeds(effect: float, sd_diff: float, power: float, limit: int = 1000) -> int:
    """The fewest seeds per arm of a fixed paired design with at least ``power``."""
    n = np.arange(2, limit)
    return int(n[np.argmax(paired_power(n, effect, sd_diff, ALPHA) >= power)])


def run(rows: int, seed: int) -> list[dict]:
    out = []
    for i, (label, effect, sd, rho, looks) in enumerate(SCENARIOS):
        rng = np.random.default_rng([seed, i])
        t0 = time.perf_counter()
        null = simulate(rows, 0.0, sd, rho, looks, ALPHA, rng)
        real = simulate(rows, effect, sd, rho, looks, ALPHA, rng)
        sd_diff = sd * np.sqrt(2 * (1 - rho))
        power = real.rejection_rate
        fixed = fixed_seeds(effect, sd_diff, power)
        out.append(
            {
                "scenario": label,
                "effect": effect,
                "spread": sd,
                "correlation": rho,
                "looks": looks,
                "rows": rows,
                "false_excludes_0": null.rejection_rate,
                "false_excludes_0_se": Simulation.error(null.rejection_rate, rows),
                "coverage": real.coverage,
                "coverage_se": Simulation.error(real.coverage, rows),
                "power": power,
                "mean_seeds_effect": real.mean_seeds,
                "mean_seeds_null": null.mean_seeds,
                "fixed_seeds_same_power": fixed,
                "fixed_power": float(paired_power(fixed, effect, sd_diff, ALPHA)),
                "seconds": time.perf_counter() - t0,
            }
        )
    return out


def table(results: list[dict]) -> list[str]:
    lines = [
        "| design | false 'excludes 0' (no effect) | covers the paper's effect | power | "
        "mean seeds/arm: effect, none | fixed design, same power |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {100 * r['false_excludes_0']:.2f}% ± "
            f"{100 * r['false_excludes_0_se']:.2f} | {100 * r['coverage']:.2f}% ± "
            f"{100 * r['coverage_se']:.2f} | {100 * r['power']:.1f}% | "
            f"{r['mean_seeds_effect']:.2f}, {r['mean_seeds_null']:.2f} | "
            f"{r['fixed_seeds_same_power']} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20_000, help="simulated rows per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = run(args.rows, args.seed)
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": _cpu(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        print(json.dumps({"hardware": info, "results": results}, indent=1))
        return 0
    print("\n".join(table(results)))
    print(
        f"\n{args.rows:,} rows per case and truth, seed {args.seed}; ± is the Monte Carlo "
        f"standard error. {info['date']}, {info['cpus']} CPUs ({info['cpu']}), "
        f"Python {info['python']}, numpy {info['numpy']}: {info['seconds']:.0f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
