"""The structural decomposition (lotj.counterfactuals; MODEL.md sections 9.2 and 10).

- the source's set is exactly the stated overrides, means kept; a zero variance beside a non-zero covariance
  is refused before anything runs;
- a warm-started economy identical to the baseline reproduces the baseline's figures within their seed scatter
  and reaches tolerance in a fraction of the baseline's epochs; with θ⁺ = θ⁻ = 0 the coworker components of
  the h-growth decomposition are exactly zero (solves in-process, without Ray);
- a tiny set runs end to end on a local Ray, two solves in parallel, and a solve forced to fail is reported as
  failed while the others complete; resume solves only what is left.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from lotj.config import config_from_yaml, load_config
from lotj.counterfactuals.economies import BASELINE, Economy, economy_config, load_set, parse_set
from lotj.counterfactuals.runner import ERROR_FILE, SetContext, round_one_cpus, run_dir, run_state, solve, to_solve
from lotj.counterfactuals.spec import SPEC_FILE, SetSpec, build_spec, load_spec, merge_options, parse_cli, save_spec
from lotj.counterfactuals.table import DECOMPOSITION, FIGURES, MOMENTS, STATS, write_table
from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError
from lotj.measure.decomposition import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent
#: A hang guard for the Ray subprocess, not a speed requirement (about a minute on 2 shared cores).
HANG_GUARD_S = 1800

#: A smoke economy with V only (no W stage: the table must say w is missing), a short simulation and a
#: held-out residual steady enough for a tolerance of 0.5 (a cold start needs about 5 epochs to reach it).
TINY = [
    "solver.stages=[v]",
    "solver.steps_per_epoch=10",
    "solver.batch_size=32",
    "solver.n_omega=256",
    "solver.n_heldout=128",
    "solver.m_n=4",
    "solver.m_e=4",
    "solver.m_eval=32",
    "solver.max_epochs=30",
    "solver.tol=0.5",
    "sim.n_firms=200",
    "sim.burn_in_years=0.5",
    "sim.years_per_epoch=0.2",
    "sim.panel_years=4",
    "sim.tol=10",  # the simulated statistics count as settled after one refresh: tolerance is V's alone
    "sim.patience=1",
    "sim.drift_window=1",
    "logging.logger=none",
    "logging.progress_bar=false",
    "accuracy.enabled=false",
    "trainer.num_threads=1",
]


# ------------------------------------------------------------------ the economies of a set
def test_source_set_is_exactly_the_stated_overrides_with_the_means_kept():
    economies = {e.name: e.overrides for e in load_set("source")}
    no_q = {"economy.sd_log_q": 0.0, "economy.cov_log_zq": 0.0}
    no_a = {"economy.sd_log_a": 0.0, "economy.cov_log_ha": 0.0}
    no_cw = {"economy.theta_plus": 0.0, "economy.theta_minus": 0.0}
    assert economies == {
        BASELINE: {},
        "no_q": no_q,
        "no_a": no_a,
        "no_coworkers": no_cw,
        "no_q+no_a": {**no_q, **no_a},
        "no_q+no_a+no_coworkers": {**no_q, **no_a, **no_cw},
    }
    base = load_config(["conf=baseline"]).economy
    for name, overrides in economies.items():
        cfg = economy_config("baseline", [], Economy(name, overrides))
        changed = {f.name for f in fields(EconomyParams) if getattr(cfg.economy, f.name) != getattr(base, f.name)}
        # only the stated parameters move (every one of them is non-zero in the source calibration), to zero
        assert changed == {key.removeprefix("economy.") for key in overrides}, name
        assert all(getattr(cfg.economy, key) == 0.0 for key in changed)
        assert (cfg.economy.mu_q, cfg.economy.mu_a, cfg.economy.mu_h, cfg.economy.mu_z) == (
            base.mu_q,
            base.mu_a,
            base.mu_h,
            base.mu_z,
        )


@pytest.mark.parametrize(
    "overrides,cov",
    [({"economy.sd_log_q": 0.0}, "cov_log_zq"), ({"economy.sd_log_a": 0.0}, "cov_log_ha")],
)
def test_a_zero_variance_beside_a_covariance_is_refused_before_ray_starts(tmp_path, overrides, cov):
    (economy,) = parse_set({"economies": {"half": overrides}})[1:]
    with pytest.raises(ConfigError, match=rf"economy 'half'.*economy.{cov} = .*must be 0"):
        economy_config("smoke", [], economy)
    path = tmp_path / "half.yaml"
    path.write_text(json.dumps({"economies": {"half": overrides}}))
    with pytest.raises(ConfigError, match=rf"economy 'half'.*{cov}"):
        build_spec(parse_cli(["conf=smoke", f"set={path}"]))


@pytest.mark.parametrize(
    "economies,pattern",
    [
        ({"a": {"with": ["b"]}}, r"takes 'b' with it, which is not listed above"),
        ({"a": {"seed": 3}}, r"sets 'seed', which the runner sets"),
        ({"a": {"init_from": "x"}}, r"sets 'init_from'"),
        ({"baseline": {"economy.b": 0.2}}, r"must be a plain folder name .* other than 'baseline'"),
        ({"a/b": {"economy.b": 0.2}}, r"plain folder name"),
        ({"a": {"economy.b": 0.2}, "c": {"with": ["a"], "economy.b": 0.3}}, r"against its `with` economies"),
        ({"a": 0.2}, r"needs a mapping"),
    ],
)
def test_a_bad_set_is_refused_naming_the_economy(economies, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_set({"economies": economies})


def test_cumulative_economies_nest_and_the_spec_round_trips(tmp_path):
    economies = parse_set(
        {"economies": {"x": {"economy": {"b": 0.2}}, "y": {"economy.eta": 0.9}, "x+y": {"with": ["x", "y"]}}}
    )
    assert [e.name for e in economies] == [BASELINE, "x", "y", "x+y"]
    assert economies[3].overrides == {"economy.b": 0.2, "economy.eta": 0.9}
    assert economies[3].argv() == ["economy.b=0.2", "economy.eta=0.9"]
    args = parse_cli(["conf=smoke", "seed=5", "--seeds", "3", "sweep.num_cpus=2", "economy.n_w=5.0"])
    spec = build_spec(args)
    assert spec.seeds == [5, 6, 7] and "economy.n_w=5.0" in spec.overrides and spec.options.num_cpus == 2
    assert parse_cli(["--seeds=2"]).seeds == 2
    with pytest.raises(ConfigError, match="--seeds"):
        parse_cli(["--seeds", "0"])
    spec = SetSpec("smoke", "source", [], [0], economies, merge_options(None, []))
    save_spec(spec, tmp_path / SPEC_FILE)
    again = load_spec(tmp_path / SPEC_FILE, ["sweep.num_cpus=1"])
    assert again.economies == economies and again.options.num_cpus == 1
    with pytest.raises(ConfigError, match="cannot change when a set resumes"):
        load_spec(tmp_path / SPEC_FILE, ["sweep.resources.gpu=1"])


@pytest.mark.parametrize(
    ("options", "seeds", "cpus", "expected"),
    [
        ([], 1, 2.0, 2),  # one baseline alone on a 2-core machine: both cores, as two torch threads
        ([], 3, 8.0, 2),  # three seeds' baselines share 8 CPUs: 2 each (the rest stays free)
        (["sweep.max_concurrent=2"], 3, 8.0, 4),  # two at a time: 4 each
        ([], 3, 2.0, 0),  # fewer CPUs than solves: the resources' one CPU each
        (["sweep.resources.cpu=4"], 1, 4.0, 0),  # the resources already give them all
        (["sweep.resources.gpu=1"], 1, 16.0, 0),  # GPU solves keep their resources
        (["sweep.address=auto"], 1, 64.0, 0),  # a cluster's nodes may differ: as set
    ],
)
def test_the_baselines_share_out_a_local_machines_cpus(options, seeds, cpus, expected):
    economies = [e for e in load_set("source") if e.name == BASELINE]
    spec = SetSpec("smoke", "source", [], list(range(seeds)), economies, merge_options(None, options))
    assert round_one_cpus(spec, seeds, cpus) == expected


# ------------------------------------------------------------------ solves in-process (no Ray)
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def solved_set(tmp_path_factory):
    """The baseline and an identical economy (``same: {}``) with three seeds, ``no_coworkers`` with the first,
    solved in-process with the runner's :func:`solve` (the Ray trainable's body), then the table."""
    set_dir = tmp_path_factory.mktemp("set")
    economies = parse_set(
        {"economies": {"same": {}, "no_coworkers": {"economy.theta_plus": 0.0, "economy.theta_minus": 0.0}}}
    )
    spec = SetSpec("smoke", "inline", list(TINY), SEEDS, economies, merge_options(None, []))
    save_spec(spec, set_dir / SPEC_FILE)
    context = SetContext("smoke", spec.overrides, {e.name: e.overrides for e in economies}, str(set_dir), [])
    for economy, seeds in ((BASELINE, SEEDS), ("same", SEEDS), ("no_coworkers", SEEDS[:1])):
        for seed in seeds:
            assert solve(context, economy, seed)["status"] == "ok"
    table = write_table(set_dir)
    return set_dir, spec, table.set_index("economy"), pd.read_csv(set_dir / "runs.csv")


def test_warm_start_reproduces_the_baseline_within_its_scatter_in_a_fraction_of_the_epochs(solved_set):
    set_dir, _, table, runs = solved_set
    same = runs[runs["economy"] == "same"]
    base = runs[runs["economy"] == BASELINE]
    for seed in SEEDS:  # each started from the baseline of its own seed
        summary = json.loads((run_dir(set_dir, "same", seed) / "summary.json").read_text())
        assert summary["init_from"] == str(run_dir(set_dir, BASELINE, seed))
        assert summary["message"] == "reached tolerance"
        assert summary["initial_residual"] < 0.5 < summary_of(set_dir, BASELINE, seed)["initial_residual"]
    assert same["epochs"].mean() <= 0.5 * base["epochs"].mean()
    assert table.loc[BASELINE, "h_mean_rel"] == 1.0 and table.loc[BASELINE, "h_var_rel"] == 1.0
    for key in ("h_mean", "h_var", "h_mean_all", "h_var_all"):
        cv = base[key].std(ddof=1) / base[key].mean()  # the baseline's seed scatter, relative
        assert abs(table.loc["same", f"{key}_rel"] - 1.0) <= 3.0 * cv, key
        assert table.loc["same", f"{key}_rel_sd"] > 0  # three seeds: a scatter is reported


def summary_of(set_dir: Path, economy: str, seed: int) -> dict:
    return json.loads((run_dir(set_dir, economy, seed) / "summary.json").read_text())


def test_without_coworker_learning_the_coworker_components_are_exactly_zero(solved_set):
    set_dir, _, table, runs = solved_set
    coworker = [k for k in DECOMPOSITION if "theta" in k]
    assert len(coworker) == 7  # θ⁺, θ⁻, θ⁺×θ⁻ and their covariances with a and q
    cf = runs[(runs["economy"] == "no_coworkers") & (runs["state"] == "done")]
    assert len(cf) == 1 and table.loc["no_coworkers", "status"] == "pending"  # seeds 1 and 2 not solved here
    assert (cf[coworker] == 0.0).all().all() and (table.loc["no_coworkers", coworker] == 0.0).all()
    own = [k for k in DECOMPOSITION if "theta" not in k]
    assert table.loc["no_coworkers", own].sum() == pytest.approx(1.0, abs=1e-12)
    # the baseline learns from coworkers: its θ⁺ share is positive, so the zeros come from the economy's θ
    assert (runs[runs["economy"] == BASELINE]["dec_theta_plus__theta_plus"] > 0).all()
    dec = json.loads((run_dir(set_dir, "no_coworkers", SEEDS[0]) / "moments.json").read_text())
    assert all(dec["h_growth_decomposition"][c][d] == 0.0 for c in COMPONENTS for d in COMPONENTS[2:])


def test_the_table_says_w_is_missing_without_a_w_stage(solved_set):
    set_dir, _, table, _ = solved_set
    assert set(table["w_status"]) == {"missing (no W stage)"}
    assert table[["w_mean", "w_mean_rel", "w_var", "w_var_rel"]].isna().all().all()
    md = (set_dir / "counterfactuals.md").read_text()
    assert "| baseline | ok | not estimated | 1.0000 ± 0.0000 | 1.0000 ± 0.0000 | missing | missing |" in md
    assert (set_dir / "counterfactuals.png").stat().st_size > 0


def test_resume_solves_only_what_is_left(solved_set, tmp_path):
    source, spec, _, _ = solved_set
    set_dir = tmp_path / "copy"
    shutil.copytree(source, set_dir)
    assert to_solve(spec, set_dir, [BASELINE, "same"]) == []
    (run_dir(set_dir, "same", 1) / "summary.json").unlink()  # interrupted after its last checkpoint
    assert run_state(run_dir(set_dir, "same", 1)) == "unfinished"
    (run_dir(set_dir, "same", 2) / "summary.json").unlink()
    (run_dir(set_dir, "same", 2) / ERROR_FILE).write_text("Traceback\nRuntimeError: forced\n")
    assert to_solve(spec, set_dir, [BASELINE, "same"]) == [("same", 1)]
    # the unfinished solve continues from its checkpoint, still recording its panel at the baseline's age
    context = SetContext(spec.conf, spec.overrides, {e.name: e.overrides for e in spec.economies}, str(set_dir), [])
    assert solve(context, "same", 1)["status"] == "ok"
    cfg = config_from_yaml(run_dir(set_dir, "same", 1) / "config.yaml")
    assert cfg.resume == str(run_dir(set_dir, "same", 1) / "checkpoints" / "last.ckpt") and not cfg.init_from
    first = pd.read_parquet(run_dir(set_dir, BASELINE, 1) / "panel.parquet", columns=["year"])["year"].min()
    assert cfg.sim.panel_from_year == first > 0
    assert pd.read_parquet(run_dir(set_dir, "same", 1) / "panel.parquet", columns=["year"])["year"].min() == first
    retry = SetSpec(spec.conf, spec.set, spec.overrides, spec.seeds, spec.economies, merge_options(None, []))
    retry.options.retry_failed = True
    assert to_solve(retry, set_dir, ["same"]) == [("same", 2)]
    assert not run_dir(set_dir, "same", 2).exists()  # a failed solve is retried from scratch

    # a baseline that failed: its seed's pending counterfactuals are reported as not run, never dropped
    (run_dir(set_dir, BASELINE, 0) / "summary.json").unlink()
    (run_dir(set_dir, BASELINE, 0) / ERROR_FILE).write_text("RuntimeError: forced\n")
    shutil.rmtree(run_dir(set_dir, "same", 0))
    table = write_table(set_dir).set_index("economy")
    assert table.loc[BASELINE, "status"] == "failed" and table.loc[BASELINE, "seeds_solved"] == "2/3"
    assert table.loc["same", "status"] == "not run" and table.loc["same", "seeds_solved"] == "1/3"
    runs = pd.read_csv(set_dir / "runs.csv").set_index(["economy", "seed"])
    assert runs.loc[("same", 0), "state"] == "not run" and "baseline of seed 0 failed" in runs.loc[("same", 0), "error"]
    assert runs.loc[("same", 2), "state"] == "pending" and runs.loc[("no_coworkers", 1), "state"] == "pending"
    assert "forced" in runs.loc[(BASELINE, 0), "error"]


# ------------------------------------------------------------------ on Ray, end to end
RAY_SET = """
economies:
  no_coworkers: {economy.theta_plus: 0.0, economy.theta_minus: 0.0}
  broken: {net.embed_dim: 8}   # another V architecture: its warm start from the baseline fails
"""


@pytest.mark.slow  # a local Ray and three solves: over a minute on 2 shared cores; the solves, table and resume
# bookkeeping above run in the default suite without Ray
def test_a_tiny_set_runs_on_ray_and_a_failed_solve_is_reported(tmp_path):
    set_file = tmp_path / "set.yaml"
    set_file.write_text(RAY_SET)
    argv = [
        sys.executable,
        "-m",
        "lotj.counterfactuals",
        "conf=smoke",
        f"set={set_file}",
        *TINY,
        "solver.max_epochs=2",
        "sim.n_firms=100",
        f"sweep.out_dir={tmp_path}",
        "sweep.name=tiny",
        "sweep.num_cpus=2",  # the two counterfactuals run in parallel, one CPU each
        "sweep.verbose=0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # one economy failed
    set_dir = tmp_path / "tiny"
    table = pd.read_csv(set_dir / "counterfactuals.csv").set_index("economy")
    assert list(table.index) == [BASELINE, "no_coworkers", "broken"]
    columns = [*STATS, *[f"{k}_rel" for k in STATS], *[f"{k}_rel_sd" for k in STATS], *FIGURES, *MOMENTS]
    assert set(columns + list(DECOMPOSITION) + ["status", "convergence", "w_status"]) <= set(table.columns)
    assert table.loc[BASELINE, "status"] == "ok" and table.loc["no_coworkers", "status"] == "ok"
    assert table.loc["broken", "status"] == "failed" and "another architecture" in table.loc["broken", "error"]
    assert math.isfinite(table.loc["no_coworkers", "h_mean_rel"]) and math.isnan(table.loc["broken", "h_mean_rel"])
    assert table.loc["no_coworkers", "dec_theta_plus__theta_plus"] == 0.0
    assert table.loc[BASELINE, "dec_theta_plus__theta_plus"] > 0.0
    assert "`broken`: failed" in (set_dir / "counterfactuals.md").read_text()
    # both counterfactuals ran as trials of one Tune experiment, after the baseline's
    rounds = sorted(p.name.split("-")[0] for p in (set_dir / "tune").iterdir())
    assert rounds == ["baseline", "counterfactuals"]
    trials = sorted(p.name for p in next((set_dir / "tune").glob("counterfactuals-*")).iterdir() if p.is_dir())
    assert trials == ["broken-seed0", "no_coworkers-seed0"]
    # the baseline ran alone, on both CPUs; the counterfactuals on one each
    threads = {e: config_from_yaml(run_dir(set_dir, e, 0) / "config.yaml").trainer.num_threads
               for e in (BASELINE, "no_coworkers")}  # fmt: skip
    assert threads == {BASELINE: 2, "no_coworkers": 1}

    # resume: nothing is left (a failed solve is retried only with sweep.retry_failed), no Ray starts
    again = subprocess.run(
        [sys.executable, "-m", "lotj.counterfactuals", f"resume={set_dir}"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=HANG_GUARD_S,
    )  # fmt: skip
    assert again.returncode == 1 and "nothing left to solve" in again.stdout, again.stderr[-3000:]
    assert pd.read_csv(set_dir / "counterfactuals.csv")["status"].tolist() == ["ok", "ok", "failed"]
