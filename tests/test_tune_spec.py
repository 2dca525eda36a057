"""The sweep's plumbing without Ray running: CLI, search spaces, options, overrides, W&B mode, tables."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lotj.config import load_config
from lotj.errors import ConfigError
from tune import sweep as sweep_cli
from tune.cluster import NodeExited, pid_alive, port_open, wait_for_nodes
from tune.results import best_trial
from tune.spec import (
    SPACE_DIR,
    SweepSpec,
    build_spec,
    flatten_space,
    format_value,
    load_spec,
    merge_options,
    param_space,
    parse_cli,
    save_spec,
    trial_overrides,
)
from tune.tracking import trial_run_env
from tune.trial import TrialDiverged, TuneReportCallback, check_summary, metric_name


def write_space(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_cli_split():
    args = parse_cli(["conf=smoke", "tune=arch", "sweep.num_samples=3", "solver.max_epochs=2", "seed=4"])
    assert (args.conf, args.tune, args.resume) == ("smoke", "arch", "")
    assert args.sweep == ["sweep.num_samples=3"]
    assert args.overrides == ["solver.max_epochs=2", "seed=4"]
    with pytest.raises(ConfigError, match="key=value"):
        parse_cli(["smoke"])


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACE_DIR.glob("*.yaml")))
def test_shipped_spaces_are_valid(name):
    spec = build_spec(parse_cli(["conf=smoke", f"tune={name}"]))
    domains = param_space(spec.space)
    assert domains and all(hasattr(d, "sample") for d in domains.values())
    # every sampled point is a config the schema accepts
    for _ in range(3):
        sample = {k: d.sample() for k, d in domains.items()}
        load_config(["conf=smoke", *spec.overrides, *trial_overrides(sample)], validate_ranges=False)


def test_arch_and_economy_cover_what_the_issue_asks():
    arch = build_spec(parse_cli(["conf=smoke", "tune=arch"])).space
    for key in ("net.phi_width", "net.rho_width", "net.phi_depth", "net.rho_depth", "net.embed_dim", "solver.lr"):
        assert key in arch
    assert {"solver.m_n", "solver.m_e"} <= set(arch)
    economy = build_spec(parse_cli(["conf=smoke", "tune=economy"])).space
    assert economy and all(k.startswith("economy.") for k in economy)


def test_nested_and_dotted_spaces_agree():
    nested = flatten_space({"net": {"rho_width": {"choice": [1, 2]}, "activation": "tanh"}, "solver.lr": 0.1})
    assert nested == {"net.rho_width": {"choice": [1, 2]}, "net.activation": "tanh", "solver.lr": 0.1}


@pytest.mark.parametrize(
    "entry, message",
    [
        ("net.rho_widht: {choice: [16]}", "did you mean 'net.rho_width'"),
        ("net.rho_width: {choice: [wide]}", "net.rho_width"),
        ("out_dir: {choice: [a, b]}", "set by the sweep"),
        ("solver.lr: {loguniform: [0.0, 1.0]}", "lower bound > 0"),
        ("solver.lr: {uniform: [1.0, 0.1]}", "lower < upper"),
        ("solver.lr: {uniform: [0.1]}", "takes 2 numbers"),
        ("solver.lr: {beta: [1, 2]}", "solver.lr"),
        ("solver.lr: {choice: [0.1], uniform: [0, 1]}", "not a distribution"),
        ("net.rho_width: {choice: []}", "non-empty list"),
    ],
)
def test_bad_spaces_are_refused_before_ray_starts(tmp_path, entry, message):
    path = write_space(tmp_path, f"space:\n  {entry}\n")
    with pytest.raises(ConfigError, match=message):
        build_spec(parse_cli(["conf=smoke", f"tune={path}"]))


def test_unknown_space_and_shared_override_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown search space"):
        build_spec(parse_cli(["tune=nope"]))
    with pytest.raises(ConfigError, match="did you mean"):
        build_spec(parse_cli(["conf=smoke", "tune=arch", "solver.max_epoch=2"]))
    with pytest.raises(ConfigError, match="must be"):
        build_spec(parse_cli(["conf=smoke", "tune=arch", "solver.max_epochs=0"]))
    with pytest.raises(ConfigError, match="'sweep' and 'space'"):
        build_spec(parse_cli([f"tune={write_space(tmp_path, 'spaces: {}')}"]))


def test_sweep_options_merge_and_validate():
    options = merge_options(
        {"num_samples": 8, "resources": {"cpu": 2}}, ["sweep.num_samples=3", "sweep.resources.gpu=0.5"]
    )
    assert options.num_samples == 3 and options.resources.cpu == 2 and options.resources.gpu == 0.5
    with pytest.raises(ConfigError, match="sweep.mode"):
        merge_options({}, ["sweep.mode=lowest"])
    with pytest.raises(ConfigError, match="num_samplez"):
        merge_options({}, ["sweep.num_samplez=3"])
    with pytest.raises(ConfigError, match="reduction_factor"):
        merge_options({"scheduler": {"reduction_factor": 1}}, [])
    with pytest.raises(ConfigError, match="sweep.name"):
        merge_options({}, ["sweep.name=a/b"])


def test_trial_defaults_follow_resources_and_user_overrides_win():
    spec = build_spec(parse_cli(["conf=smoke", "tune=arch", "sweep.resources.cpu=2", "sweep.resources.gpu=0.5"]))
    assert spec.overrides == [
        "logging.progress_bar=false",
        "trainer.num_threads=2",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
    ]
    spec = build_spec(parse_cli(["conf=smoke", "tune=arch", "trainer.num_threads=1"]))
    cfg = load_config(["conf=smoke", *spec.overrides])
    assert cfg.trainer.num_threads == 1 and cfg.logging.progress_bar is False


@pytest.mark.parametrize(
    "key, value",
    [
        ("solver.lr", 1e-5),
        ("solver.lr", np.float64(3.5e-4)),
        ("net.rho_width", np.int64(64)),
        ("solver.unbiased", True),
        ("solver.stages", ["v", "w"]),
        ("net.activation", "tanh"),
        ("economy.eta", 0.9123456789012345),
    ],
)
def test_sampled_values_round_trip_through_overrides(key, value):
    cfg = load_config(["conf=smoke", f"{key}={format_value(value)}"])
    group, name = key.split(".")
    got = getattr(getattr(cfg, group), name)
    assert got == (value.item() if hasattr(value, "item") else value)


def test_spec_round_trip_and_resume_guards(tmp_path):
    spec = build_spec(parse_cli(["conf=smoke", "tune=arch", "sweep.num_samples=2", "solver.max_epochs=2"]))
    save_spec(spec, tmp_path / "sweep.yaml")
    again = load_spec(tmp_path / "sweep.yaml", ["sweep.address=10.0.0.1:6379", "sweep.retry_failed=true"])
    assert isinstance(again, SweepSpec)
    assert (again.conf, again.tune, again.overrides, again.space) == (spec.conf, spec.tune, spec.overrides, spec.space)
    assert again.options.num_samples == 2 and again.options.address == "10.0.0.1:6379" and again.options.retry_failed
    with pytest.raises(ConfigError, match="cannot change when a sweep resumes"):
        load_spec(tmp_path / "sweep.yaml", ["sweep.num_samples=9"])


def test_cli_refuses_bad_input_before_ray(tmp_path, capsys):
    assert sweep_cli.main(["conf=nope", "tune=arch"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert sweep_cli.main([f"resume={tmp_path}"]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    assert sweep_cli.main([f"resume={tmp_path}", "solver.lr=0.1"]) == 2
    assert "only sweep.* options" in capsys.readouterr().err
    out = tmp_path / "sweeps"
    assert sweep_cli.main(["conf=smoke", "tune=arch", f"sweep.out_dir={out}", "sweep.name=x", "sweep.mode=up"]) == 2
    assert not out.exists()  # nothing is created for a refused sweep


def test_trial_run_env_names_the_run_and_keeps_the_driver_mode():
    environ = {"WANDB_SILENT": "false"}
    got = trial_run_env("offline", "run_trial_ab_00001", "ab_00001", environ)
    assert environ == got
    assert got == {
        "WANDB_MODE": "offline",
        "WANDB_NAME": "run_trial_ab_00001",
        "WANDB_RUN_ID": "ab_00001",
        "WANDB_RESUME": "allow",
        "WANDB_JOB_TYPE": "tune",
        "WANDB_SILENT": "false",
    }


def test_wait_for_nodes_polls_until_joined_or_times_out():
    counts = iter([1, 1, 2, 3])
    now = [0.0]
    n = wait_for_nodes(
        3, timeout=60, count=lambda: next(counts), clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    assert n == 3 and now[0] == 6.0
    with pytest.raises(NodeExited, match="exited"):
        wait_for_nodes(2, timeout=60, count=lambda: 1, alive=lambda: False, sleep=lambda s: None)
    now = [0.0]
    with pytest.raises(TimeoutError, match="1 of 2 Ray nodes"):
        wait_for_nodes(
            2, timeout=5, count=lambda: 1, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )


def test_report_callback_fails_a_diverged_epoch_before_reporting():
    import torch

    callback = TuneReportCallback("val_residual", "conf: smoke\n")
    trainer = SimpleNamespace(
        sanity_checking=False,
        current_epoch=2,
        callback_metrics={"train/loss": torch.tensor(float("nan")), "val/residual": torch.tensor(0.5)},
    )
    with pytest.raises(TrialDiverged, match="train_loss"):
        callback.on_train_epoch_end(trainer, None)
    trainer.callback_metrics = {"train/loss": torch.tensor(1.0), "val/residual": torch.tensor(float("inf"))}
    with pytest.raises(TrialDiverged, match="val_residual.*epoch 3"):
        callback.on_train_epoch_end(trainer, None)
    assert metric_name("val/residual") == "val_residual"


def test_check_summary():
    check_summary({"status": "converged", "loss": 0.1, "residual": 0.01})
    with pytest.raises(TrialDiverged, match="status 'nan'"):
        check_summary({"status": "nan", "loss": float("nan")})
    with pytest.raises(TrialDiverged, match="residual"):
        check_summary({"status": "max_epochs", "loss": 0.1, "residual": math.inf})


def test_best_trial_skips_failed_and_non_finite():
    table = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d"],
            "status": ["completed", "failed", "stopped", "completed"],
            "val_residual": [0.3, 0.01, 0.2, math.nan],
        }
    )
    assert best_trial(table, "val_residual")["trial_id"] == "c"
    assert best_trial(table, "val_residual", mode="max")["trial_id"] == "a"
    assert best_trial(table[table.status == "failed"], "val_residual") is None


def test_port_and_pid_probes():
    import os
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert port_open(address)
    assert not port_open(address, timeout=0.5)
    assert not port_open("no-port")
    assert pid_alive(os.getpid())
