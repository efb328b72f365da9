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

``--procedure`` runs the procedure of ``dropattack seeds --run`` itself instead of its
vectorised model: simulated sweeps of m rows against one baseline, judged after every round by
:func:`sweeps.report.rounds.judge` on the same per-seed values the service would read, the
next round's size from :func:`sweeps.report.rounds.round_size`, the round's fresh seeds given
to the open rows and their baseline only, a row decided at the first look whose interval
excludes 0 at level 0.05 / m, until no row is open, and optionally a cap on rounds (what
``--budget-hours`` does). Printed per design: the false "excludes 0" rate per row and per
family (no effect), the coverage of the true effect, the power, and the mean seeds per arm
of the rows and of the baseline against a fixed design of the same power at 0.05 / m.

    .venv/bin/python bench/sequential_seeds.py [--rows 20000] [--seed 0] [--json] [--procedure]
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

from sweeps.report.aggregate import CellStats, Difference  # noqa: E402
from sweeps.report.effects import Effect  # noqa: E402
from sweeps.report.rounds import Record, judge, round_size  # noqa: E402
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


#: (label, effect, seed spread, correlation, rows per family, initial, max, per round,
#: rounds at most (None: until decided or the maximum))
PROCEDURES = [
    ("PHEME Table 6, 1 row, 3 to 12 in rounds of 3", 3.07, 3.9, 0.6, 1, 3, 12, 3, None),
    ("PHEME Table 6, 3 rows on 1 baseline, 3 to 12", 3.07, 3.9, 0.6, 3, 3, 12, 3, None),
    ("PHEME Table 6, 3 rows, 3 to 20, budget: 2 rounds", 3.07, 3.9, 0.6, 3, 3, 20, 3, 2),
    ("AG News Table 7 (+1.48, spread 2), 2 rows, 4 to 16", 1.48, 2.0, 0.6, 2, 4, 16, 4, None),
]


def _arm(key: str, values: np.ndarray, baseline: bool = False) -> CellStats:
    n = len(values)
    return CellStats(
        key=key,
        params={},
        variant="",
        values=[float(v) for v in values],
        seeds=[str(s) for s in range(n)],
        run_ids=[""] * n,
        is_baseline=baseline,
    )


def _family(
    truth: float,
    paper: float,
    spread: float,
    rho: float,
    m: int,
    initial: int,
    max_seeds: int,
    step: int,
    cap: int | None,
    rng: np.random.Generator,
) -> list[tuple[bool, bool, int, int]]:
    """One simulated sweep of ``m`` rows against one baseline, run through the rounds'
    code: per row (decided, interval covers the truth, row seeds, baseline seeds)."""
    shared = rng.standard_normal(max_seeds)
    base = 80 + spread * shared
    rows = (
        80
        + truth
        + spread * (rho * shared + np.sqrt(1 - rho**2) * rng.standard_normal((m, max_seeds)))
    )
    seeds = [initial] * m
    base_seeds = initial
    record = Record(max_seeds=max_seeds, step=step)
    rounds = 0
    while True:
        baseline = _arm("p=0", base[:base_seeds], baseline=True)
        effects = [
            Effect(_arm(f"row{j}", rows[j, : seeds[j]]), baseline, Difference(0.0), "", paper,
                   family=m)
            for j in range(m)
        ]  # fmt: skip
        states = judge(effects, record, take_look=True)
        size = round_size(states, max_seeds, step)
        if not size or (cap is not None and rounds == cap):
            break
        rounds += 1
        base_seeds += size  # the round's fresh seeds: the baseline and the open rows only
        for j, s in enumerate(states):
            if s.open:
                seeds[j] += size
    return [
        (s.decided, s.look is not None and not s.look.excludes(truth), seeds[j], base_seeds)
        for j, s in enumerate(states)
    ]


def run_procedure(rows: int, seed: int) -> list[dict]:
    """The designs of :data:`PROCEDURES`, through the rounds' own code."""
    out = []
    for i, (label, effect, sd, rho, m, initial, max_seeds, step, cap) in enumerate(PROCEDURES):
        rng = np.random.default_rng([seed, 100 + i])
        t0 = time.perf_counter()
        families = -(-rows // m)
        res = {}
        for truth in (0.0, effect):
            per = [
                _family(truth, effect, sd, rho, m, initial, max_seeds, step, cap, rng)
                for _ in range(families)
            ]
            flat = np.asarray([r for f in per for r in f], dtype=float)
            res[truth] = (flat, np.asarray([any(r[0] for r in f) for f in per]))
        null, null_families = res[0.0]
        real, _ = res[effect]
        n = len(null)
        power = float(real[:, 0].mean())
        sd_diff = sd * np.sqrt(2 * (1 - rho))
        n_fixed = np.arange(2, 1000)
        ok = paired_power(n_fixed, effect, sd_diff, ALPHA / m) >= power
        fixed = int(n_fixed[np.argmax(ok)])
        out.append(
            {
                "scenario": label,
                "effect": effect,
                "spread": sd,
                "correlation": rho,
                "rows_per_family": m,
                "looks": schedule(initial, max_seeds, step),
                "rounds_cap": cap,
                "rows": n,
                "false_excludes_0": float(null[:, 0].mean()),
                "false_excludes_0_se": Simulation.error(float(null[:, 0].mean()), n),
                "family_false_excludes_0": float(null_families.mean()),
                "family_false_excludes_0_se": Simulation.error(
                    float(null_families.mean()), families
                ),
                "coverage": float(real[:, 1].mean()),
                "coverage_se": Simulation.error(float(real[:, 1].mean()), n),
                "power": power,
                "mean_seeds_effect": float(real[:, 2].mean()),
                "mean_seeds_null": float(null[:, 2].mean()),
                "mean_baseline_seeds_effect": float(real[:, 3].mean()),
                "fixed_seeds_same_power": fixed,
                "seconds": time.perf_counter() - t0,
            }
        )
    return out


def procedure_table(results: list[dict]) -> list[str]:
    lines = [
        "| design | false 'excludes 0' per row, per family (no effect) | covers the true effect "
        "| power | mean seeds/arm: rows (effect, none), baseline | fixed design, same power |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {100 * r['false_excludes_0']:.2f}% ± "
            f"{100 * r['false_excludes_0_se']:.2f}, {100 * r['family_false_excludes_0']:.2f}% ± "
            f"{100 * r['family_false_excludes_0_se']:.2f} | {100 * r['coverage']:.2f}% ± "
            f"{100 * r['coverage_se']:.2f} | {100 * r['power']:.1f}% | "
            f"{r['mean_seeds_effect']:.2f}, {r['mean_seeds_null']:.2f}; "
            f"{r['mean_baseline_seeds_effect']:.2f} | {r['fixed_seeds_same_power']} |"
        )
    return lines


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
    parser.add_argument(
        "--procedure",
        action="store_true",
        help="run the rounds' own code (dropattack seeds --run) on simulated sweeps",
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = (run_procedure if args.procedure else run)(args.rows, args.seed)
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
    print("\n".join((procedure_table if args.procedure else table)(results)))
    print(
        f"\n{args.rows:,} rows per case and truth, seed {args.seed}; ± is the Monte Carlo "
        f"standard error. {info['date']}, {info['cpus']} CPUs ({info['cpu']}), "
        f"Python {info['python']}, numpy {info['numpy']}: {info['seconds']:.0f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
