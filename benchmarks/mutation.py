"""Mutation score of the economics: how many small wrong programs the fast tests catch.

Runs mutmut (``pip install -e .[mutation]``) over modules of ``lotj/economy`` and ``lotj/exact``: each
mutant is the module with one small change (a ``+`` for a ``-``, ``<`` for ``<=``, a constant moved by one,
an argument dropped, ...), and it is *killed* when a test that calls the changed function fails. The
score is killed / (killed + survived); mutants that no selected test reaches are listed apart.

Each module is run against the fast test files that exercise it (``MODULE_TESTS``), not the whole suite,
which keeps one module to minutes: mutmut then runs, for each mutant, only the tests that called the
mutated function. The run happens in a scratch copy (``build/mutation`` unless ``--workdir``), so the
working tree is left alone; mutmut keeps its results there and a second run only re-checks mutants of
changed code.

It is slow (tens of minutes for all modules on one core) and is not part of CI.

Usage::

    python benchmarks/mutation.py                                  # the economically central modules
    python benchmarks/mutation.py --modules lotj/economy/hjb.py     # one module
    python benchmarks/mutation.py --all                            # every mapped module
    python benchmarks/mutation.py --report-only                    # summarise the last run
    python benchmarks/mutation.py --rerun-survivors                # recheck the last run's survivors only

It prints the score per module and overall, and the surviving mutants (``python -m mutmut show NAME``
in the work directory prints a mutant's diff).

mutmut selects, for each mutated function, the tests that called it while it recorded them. A function
called only from a module- or session-scoped fixture is credited to the first test that used the fixture,
so a strong check further down the file is not run for its mutants: a test meant to catch changes to a
solver calls the solver itself (``test_exact_w.py``'s check against ``lotj.economy.wages`` does).

Scores
------
mutmut 3.8.1, killed / survived (score), before and after the tests added for the survivors. The first six
modules are the default set; the next five ran as one batch::

    python benchmarks/mutation.py --workdir build/mut-economy --modules lotj/economy/meetings.py \
        lotj/economy/firms.py lotj/economy/worker_value.py lotj/economy/params.py lotj/economy/value.py
    python benchmarks/mutation.py --workdir build/mut-economy --modules ... --rerun-survivors

======================  ===================  ===================
module                  before               after
======================  ===================  ===================
economy/hjb.py          391 / 67  (85.4%)    402 / 56  (87.8%)
economy/technology.py   133 / 10  (93.0%)    133 / 10  (93.0%)
economy/surplus.py      43 / 4    (91.5%)    43 / 4    (91.5%)
economy/wages.py        867 / 122 (87.7%)    896 / 93  (90.6%)
exact/bellman.py        389 / 63  (86.1%)    390 / 62  (86.3%)
exact/transitions.py    128 / 21  (85.9%)    129 / 20  (86.6%)
economy/meetings.py     125 / 14  (89.9%)    125 / 14  (89.9%)
economy/firms.py        352 / 91  (79.5%)    363 / 79  (82.1%)
economy/worker_value.py 485 / 13  (97.4%)    485 / 13  (97.4%)
economy/params.py       160 / 35  (82.1%)    172 / 23  (88.2%)
economy/value.py        212 / 10  (95.5%)    212 / 10  (95.5%)
exact/worker_value.py   590 / 133 (81.6%)    646 / 77  (89.3%)
======================  ===================  ===================

``exact/worker_value.py``: 723 of its 770 mutants judged before the run was stopped (45 not reached, 2 timed
out). Its after column reran each of the 133 survivors against
``test_the_training_residual_vanishes_at_the_exact_w`` alone, in the run's work directory
(``MUTANT_UNDER_TEST=NAME``): 42 are killed now that the test solves its own W (a meeting rate divided,
``δ_r − δ_m``, ``ψ^E`` divided by the poaching odds, a coworker counted twice, ...), and 14 more by its second
economy (b = 0.8, η = 2), where some workers quit beside coworkers who stay: in exact_small nobody quits and
every surplus is above 1.19, so the quit terms of the departure rates and reset targets, a quit rule of
``Δ < 1`` and a counter-offer floor of ``max{Δ_p, 1}`` gave the same W there. The rest are of the harmless kinds
below, plus W exactly at a reset bound (``<`` for ``<=``: the reset gives the same value), a regime's
representative wage moved within its interval, the start of the curve's sweep, rates of zero added to the
generator (``others >= 0``, ``arrival >= 0``, cap rows whose meeting rate is 0), ``np.einsum`` subscripts in
capitals (the same contraction), the iteration and merge tolerances of the regime iteration, and the problem's
``policies``, ``arrival`` and ``departure`` fields, kept for inspection and read by nothing.

The other six exact modules ran one module to a work directory, so that each score is complete when its run
ends (mutmut orders the mutants of all chosen modules by their tests' time, not module by module)::

    python benchmarks/mutation.py --workdir build/mut-states --modules lotj/exact/states.py
    python benchmarks/mutation.py --workdir build/mut-states --modules lotj/exact/states.py --rerun-survivors

======================  ===================  ===================
module                  before               after
======================  ===================  ===================
exact/states.py         384 / 96  (80.0%)    444 / 36  (92.5%)
exact/market.py         67 / 6    (91.8%)    110 / 3   (97.3%)
exact/stationary.py     365 / 53  (87.3%)    354 / 42  (89.4%)
exact/learning.py       249 / 96  (72.2%)    317 / 28  (91.9%)
exact/equilibrium.py    338 / 93  (78.4%)    385 / 61  (86.3%)
exact/wages.py          544 / 156 (77.7%)    682 / 97  (87.5%)
======================  ===================  ===================

Not in the counts: 40 mutants of ``market.py`` (``Distribution.of_population``) and 15 of ``equilibrium.py``
(``ExactSolution.values_given``) that no selected test reached before, 79 of ``wages.py`` (``quantiles``,
``by_cause``, ``summary``), and the timeouts (2 in ``stationary.py``, 4 in ``learning.py`` and ``equilibrium.py``,
21 in ``wages.py``: loops a mutant makes endless). The market's after column is a fresh run with its population
test selected (113 mutants, all reached); ``values_given``'s are in the equilibrium's (13 killed), and the wage
statistics' in the wages' (69 killed). ``stationary.py`` changed: the tests found that the stationary law left the
population to the starting point when nothing renews it (with ``δ_f = 0`` firm-type shares of 0.21 / 0.79 instead
of G_f's 0.5 / 0.5, with ``δ_r = 0`` 1.45 workers for N_w = 1), and its system now states the measure of each firm
type and of each worker type in place of the balances they imply when both rates are positive; its after column is
a fresh run of the changed module (398 mutants). The wages' before column ran with ``test_exact_w.py`` as it
was before these tests (the one file mapped to it); the equilibrium's last two tests (a search started at the
equilibrium, one cut short) were run against the survivors they address (``python -m mutmut run NAME ...`` in the
work directory).

Where a module-scoped fixture hid a function from the checks that would catch its mutants, the tests now build
what they check: ``test_exact_states.py``'s state space per test, and the wage chain's tests solve their own small
economies (the exact_small fixture credits the chain to the ladder test alone).

Survivors judged harmless in these six, beside the kinds below. ``states.py``: default dtypes of arrays built
from float or integer lists; ``reshape(-2, ...)`` (a negative size is inferred); the index table's default (read
only for firms below the cap or that fit), ``size <= cap`` (a key of n_max + 1 workers is inside the table and
reads -1) and ``counts >= 0`` for ``minus`` (a count of -1 borrows from the next digit, which radix n_max + 2
turns into a digit n_max + 1: no state); ``_keys`` with ``-`` for ``+`` (another one-to-one numbering);
``_np`` passing a CPU tensor on (numpy reads it); ``F=None`` (set two lines on); the duplicate-type check's
tolerances; ``<`` for ``<=`` when matching types (types are positive). ``market.py``: the zero meeting rate at
the cap (the decisions at the cap are empty: no S⊕x exists, so every term it multiplies is zero). ``stationary.py``:
state 0 left out of the ``plus``/``minus`` masks (it is the first empty state: never S⊕x, and the flows into it
enter the equation its type's measure replaces); the Picard start (its right side, clipping, the branch for a
firm type left without mass: Newton's root does not depend on it and is checked against the hand-built chain);
a complex step of ``2j`` (a Jacobian twice too large: Newton converges more slowly to the same root); the start
ignored (under given decisions the law is unique); Newton's iteration counts, backtracking constants and
stopping tolerance; ``return`` for ``break`` on the failure path. ``learning.py``: empty firms (their largest a,
size factor and V are 0, so the divergence check, the bound and the stopping ratio do not change), an empty
batch, a ratio exactly 1 or a worst term exactly rtol, how many firms are drawn per round (the same law, other
draws), ``torch.randint(M + 1, ...)`` (the same call), a step loop running past ``max_iterates`` (no step count
reaches it), the series' term limit and the solve time. ``equilibrium.py``: warm starts dropped (policy
iteration from no decisions, the stationary law from every firm empty: the same V and law, more steps); the
outer loop's tie tolerance divided by max|V| instead of multiplied (policy iteration settles ties and the purity
check names them, so the verdict on the tie economies is the same); comparisons at MASS_TOL and at zero surplus,
masks that differ only where χ^N, χ^E or s^N, s^E are zero anyway, ``plus > 0`` (state 0 is never S⊕x), margins
sorted with names as tie-breaks, a stable or unstable sort of equal margins, a worker's quit and sign changing
``&`` for ``|`` (they change together except through Δ = 0 exactly); the step-size schedule of the damped search
(a quarter or a fifth, a floor of 0.5 or 1.5 changes) and one more round before giving up (the result is checked
as a fixed point either way); the initial values of ``cycle``, ``imbalance`` and ``n_changed`` (overwritten before
they are read); the reported imbalance taken from the final check alone (both are below 1e-13). ``wages.py``:
the defaults of the origin tables (``top``, ``counter``, ``poached``: read only where Δ ≥ 0, where a
counter-offer clip exists, where the worker moves); origins and edges of rate zero added
(``counter_rate >= 0``, ``_moves | reneg``, ``pi >= 0``, ``off >= 0``: nothing reaches them or they carry no
mass); a threshold's tolerance divided instead of multiplied and ``<=`` for ``<`` at a threshold, Δ or a wage
exactly 0; the coworker changes' cause written -2 (any negative marks them); the diagonal of the coworker matrix
(self-loops are dropped); array lengths and the balance matrix's shape inferred from the edges (equal here: the
last node has edges both ways); the balance solver's start, preconditioner and tolerances (the Jacobi sweeps
finish it to the same residual, checked by the test to 1e-11); ``weighted_quantile``'s sort stability, its
1e-12 guard and index clamps (the cumulative weight ends at 1); the node limit; and the sampler of
``simulate_wage_chain`` where it changes only which random numbers are drawn (the seed, the order of a node's
edges, a constant added to the cumulative rates, unnormalised entry weights, all holding times doubled: the
occupancy shares keep their law).

Not killed and not harmless: ``equilibrium.py`` giving up when changes two at a time cycle (``<= 2.0``), which no
economy in the suite needs single changes to resolve; in ``wages.py``, ``by_cause``'s branch for a cause with no
resets (every cause occurs in the economies tested) and ``simulate_wage_chain`` drawing one uniform for all
workers at a step (each worker's path keeps its law; the check compares averages over 2000 workers and cannot
see the lost independence).

The last two, the solver's dense kernels and its value tables, ran the same way::

    python benchmarks/mutation.py --workdir build/mut-table --modules lotj/exact/table.py
    python benchmarks/mutation.py --workdir build/mut-table --modules lotj/exact/table.py --rerun-survivors

======================  ===================  ===================
module                  before               after
======================  ===================  ===================
exact/linalg.py         27 / 16   (62.8%)    43 / 3    (93.5%)
exact/table.py          106 / 28  (79.1%)    111 / 23  (82.8%)
======================  ===================  ===================

``linalg.py`` had no test of its own (``tests/test_exact_linalg.py`` now: integer and float32 inputs give float64
answers, the minimum-norm solution of a rank-deficient system, several right-hand sides, the thread count
restored). Writing it found that ``lstsq`` shaped its answer like ``b``, so a non-square system raised; it now
returns ``x [n]`` or ``[n, k]``; its after column is a fresh run of the changed module. Its three survivors are
the least-squares driver (``gelsy``, torch's default, also gives the minimum-norm solution, and the name is
case-insensitive). ``table.py``'s over-cap value 0 (V's and W's) and W's precision following the wage's are now
tested; its survivors are dtypes and devices (a float32 batch of ``exact_small``'s types cannot be located, its
0.6 is not a float32 number), gathers that read index 0 for ``-1`` or for state 0 itself (masked out after, or
the same entry), state 0 in the worker table (a worker's firm is never empty), ``-2`` for ``-1`` as the
no-pair mark, and axes ``±1`` on one- and two-dimensional tensors.

The survivors judged harmless, by kind: ``dtype=None``/``device=None`` and dropped ``dtype``/``device``
arguments (equivalent in CPU float64, where the suite runs; they would show on a GPU or in float32), an
axis ``-1`` written ``+1`` on a two-dimensional tensor, or to stack or unsqueeze one-dimensional ones (the same axis),
``np.transpose`` without axes on three dimensions (the reverse order it names), ``np.einsum`` subscripts in
capitals, ``.to(None)`` on CPU, message and label texts, iteration limits of loops that end earlier, ``>`` for
``>=`` at a tie of measure zero (a hire gain exactly 0, a draw exactly on the truncation bound), the
tolerances of the positive semi-definite checks, the bisection and rejection-loop counts, ``mean − ε`` for
``mean + ε`` in the normal draws (the same law), ``cumsum(p · Σp)`` for ``cumsum(p / Σp)`` (Σp = 1 is
checked to 1e-9), the fast path of ``wage_curves`` skipped (the slow path gives the same wages),
``expand_with_slot`` dropping ``z`` (its one caller reads only ``h``, ``a`` and the mask), and
``bellman._add_at``'s ``vals != 1`` for ``vals != 0`` (every value it receives is minus a rate, never +1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The fast tests that exercise each module, as files or test ids under tests/ (the union for the chosen
#: modules is collected; mutmut maps each mutated function to the tests among them that call it). Tests
#: that train or simulate for seconds are left out: every mutant of a function they call would rerun them.
MODULE_TESTS: dict[str, list[str]] = {
    "lotj/economy/hjb.py": [
        "test_hjb.py",
        "test_hjb_edges.py",
        "test_exact_learning.py",
        "test_validate.py::test_the_training_residual_vanishes_at_the_exact_v",
    ],
    "lotj/economy/technology.py": ["test_technology.py", "test_hjb.py", "test_exact_cap1.py"],
    "lotj/economy/surplus.py": ["test_hjb.py", "test_wages_surplus_input.py", "test_wages_residual.py"],
    "lotj/economy/wages.py": [
        "test_wages_residual.py",
        "test_wages_bargaining.py",
        "test_wages_inversion.py",
        "test_wages_oracle.py",
        "test_wages_surplus_input.py",
        "test_wages_edges.py",
    ],
    "lotj/economy/params.py": ["test_params.py", "test_config.py", "test_exact_cap1.py"],
    "lotj/economy/meetings.py": [
        "test_meetings.py",
        "test_hjb.py",
        "test_hjb_edges.py",
        "test_wages_residual.py",
        "test_wages_edges.py",
    ],
    "lotj/economy/firms.py": ["test_firms.py", "test_hjb.py", "test_hjb_edges.py"],
    "lotj/economy/value.py": ["test_hjb.py", "test_firms.py", "test_meetings.py", "test_exact_sums.py"],
    "lotj/economy/worker_value.py": [
        "test_wages_residual.py",
        "test_wages_oracle.py",
        "test_meetings.py",
        "test_wages_surplus_input.py",
        "test_wages_inversion.py",
    ],
    "lotj/exact/bellman.py": ["test_exact_bellman.py", "test_exact_cap1.py", "test_exact_equilibrium.py"],
    "lotj/exact/transitions.py": [
        "test_exact_bellman.py",
        "test_exact_cap1.py",
        "test_exact_stationary.py",
        "test_exact_equilibrium.py",
    ],
    "lotj/exact/states.py": ["test_exact_states.py", "test_exact_bellman.py", "test_exact_cap1.py"],
    "lotj/exact/stationary.py": ["test_exact_stationary.py", "test_exact_equilibrium.py", "test_exact_cap1.py"],
    "lotj/exact/market.py": [
        "test_exact_market.py",
        "test_validate.py::test_distribution_of_a_population_counts_states_and_unmatched_types",
        "test_exact_equilibrium.py",
        "test_exact_stationary.py",
        "test_exact_bellman.py",
        "test_exact_cap1.py",
    ],
    "lotj/exact/equilibrium.py": ["test_exact_equilibrium.py", "test_exact_cap1.py", "test_exact_w.py"],
    "lotj/exact/learning.py": ["test_exact_learning.py", "test_exact_sums.py"],
    "lotj/exact/worker_value.py": ["test_exact_w.py"],
    "lotj/exact/wages.py": ["test_exact_w.py"],
    "lotj/exact/linalg.py": ["test_exact_linalg.py", "test_exact_bellman.py", "test_exact_stationary.py"],
    "lotj/exact/table.py": ["test_exact_states.py", "test_exact_w.py", "test_sim_exact_rates.py"],
}
#: lotj/measure: each module is reached through ``measure`` and the reference panels of tests/measure_reference.py.
MEASURE_TESTS = [
    "test_measure_analysis.py",
    "test_measure_checks.py",
    "test_measure_moments.py",
    "test_measure_regression.py",
    "test_measure_tenure.py",
]
MODULE_TESTS.update(
    {
        f"lotj/measure/{m}.py": MEASURE_TESTS
        for m in ("stats", "ranks", "decomposition", "sorting", "sizes", "coworkers", "tenure")
    }
)

#: The modules that carry the model's equations (MODEL.md sections 2-6), run by default.
CORE = [
    "lotj/economy/hjb.py",
    "lotj/economy/technology.py",
    "lotj/economy/surplus.py",
    "lotj/economy/wages.py",
    "lotj/exact/bellman.py",
    "lotj/exact/transitions.py",
]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def prepare(workdir: Path, modules: list[str], deselect: list[str]) -> None:
    """Copy the package, tests and presets to ``workdir`` with a ``[tool.mutmut]`` section for ``modules``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("lotj", "tests", "conf"):
        dst = workdir / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ROOT / name, dst, ignore=shutil.ignore_patterns("__pycache__"))
    tests = sorted({f"tests/{t}" for m in modules for t in MODULE_TESTS[m]})
    args = ["-p", "no:cacheprovider", "-m", "not slow", "-q"] + [f"--deselect={d}" for d in deselect]
    text = (ROOT / "pyproject.toml").read_text()
    text += (
        "\n[tool.mutmut]\n"
        'source_paths = ["lotj"]\n'
        'also_copy = ["conf"]\n'
        f"only_mutate = {_toml_list(modules)}\n"
        f"pytest_add_cli_args = {_toml_list(args)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
    )
    (workdir / "pyproject.toml").write_text(text)


def run(workdir: Path, max_children: int, names: list[str] | None = None) -> int:
    """``mutmut run`` in ``workdir``: every mutant not yet checked, or exactly ``names``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *(names or [])]
    return subprocess.call(cmd, cwd=workdir, env=env)


def exit_codes(workdir: Path, modules: list[str]) -> dict[str, dict[str, int | None]]:
    """mutmut's result per mutant, by module, from its ``.meta`` files."""
    out = {}
    for module in modules:
        meta = workdir / "mutants" / (module + ".meta")
        if meta.is_file():
            out[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return out


def report(codes_by_module: dict[str, dict[str, int | None]]) -> dict:
    """Per-module counts and the surviving mutants' names."""
    status = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", 24: "timeout"}
    out: dict = {"modules": {}, "survived": []}
    for module, codes in codes_by_module.items():
        counts: dict[str, int] = {}
        for name, code in codes.items():
            s = "not checked" if code is None else status.get(code, "suspicious")
            counts[s] = counts.get(s, 0) + 1
            if s == "survived":
                out["survived"].append(name)
        counts["score"] = counts.get("killed", 0) / max(1, counts.get("killed", 0) + counts.get("survived", 0))
        out["modules"][module] = counts
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="+", default=None, help=f"modules to mutate (default: {' '.join(CORE)})")
    ap.add_argument("--all", action="store_true", help="every module in MODULE_TESTS")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation")
    ap.add_argument("--max-children", type=int, default=1, help="mutants checked at once (default 1)")
    ap.add_argument(
        "--deselect",
        nargs="*",
        default=[],
        help="test ids to leave out (a mutant cannot be judged by a test red unmutated)",
    )
    ap.add_argument("--report-only", action="store_true", help="summarise the last run in --workdir")
    ap.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="copy the current tests into --workdir and recheck only the mutants that survived there",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the summary to this file")
    args = ap.parse_args(argv)
    modules = list(MODULE_TESTS) if args.all else (args.modules or CORE)
    unknown = [m for m in modules if m not in MODULE_TESTS]
    if unknown:
        ap.error(f"no tests mapped for {unknown}; add them to MODULE_TESTS")
    codes = exit_codes(args.workdir, modules)
    if args.rerun_survivors:
        # a changed test selection may reset mutmut's stored results: the earlier ones are kept here and
        # only the survivors' are replaced by the new run's
        survivors = report(codes)["survived"]
        prepare(args.workdir, modules, args.deselect)
        # which tests call which function is recollected: new and renamed tests must be mapped too
        (args.workdir / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        if survivors:
            run(args.workdir, args.max_children, survivors)
        new = exit_codes(args.workdir, modules)
        for module, by_name in codes.items():
            by_name.update({k: new.get(module, {}).get(k) for k in by_name if k in survivors})
    elif not args.report_only:
        prepare(args.workdir, modules, args.deselect)
        run(args.workdir, args.max_children)
        codes = exit_codes(args.workdir, modules)
    summary = report(codes)
    killed = survived = 0
    print(f"\n{'module':34s} {'killed':>7s} {'survived':>9s} {'no tests':>9s} {'other':>6s} {'score':>6s}")
    for module, c in summary["modules"].items():
        other = sum(v for k, v in c.items() if k not in ("killed", "survived", "no tests", "score"))
        print(
            f"{module:34s} {c.get('killed', 0):7d} {c.get('survived', 0):9d} {c.get('no tests', 0):9d} "
            f"{other:6d} {c['score']:6.1%}"
        )
        killed += c.get("killed", 0)
        survived += c.get("survived", 0)
    summary["score"] = killed / max(1, killed + survived)
    print(f"{'all':34s} {killed:7d} {survived:9d} {'':9s} {'':6s} {summary['score']:6.1%}")
    print(f"\n{len(summary['survived'])} surviving mutants (python -m mutmut show NAME in {args.workdir}):")
    for name in summary["survived"]:
        print("   ", name)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
