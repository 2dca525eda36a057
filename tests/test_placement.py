"""Where the simulated economy lives (lotj/train/placement.py): the trainer's device."""

from __future__ import annotations

import pytest
import torch

from lotj.config import load_config
from lotj.errors import ConfigError
from lotj.train.placement import gpu_index, simulation_device, to_simulator


def test_the_cpu_unless_a_gpu_is_asked_for_or_found():
    assert simulation_device(load_config(["conf=smoke"])) == torch.device("cpu")
    auto = simulation_device(load_config(["conf=smoke", "trainer.accelerator=auto"]))
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_asked_for_where_there_is_none_is_a_configuration_error():
    with pytest.raises(ConfigError, match="trainer.accelerator = 'gpu', but torch sees no GPU"):
        simulation_device(load_config(["conf=smoke", "trainer.accelerator=gpu"]))


@pytest.mark.parametrize(
    ("devices", "env", "index"),
    [
        (1, {}, 0),  # one GPU: the first
        ([2], {}, 2),  # the GPU named
        ("3,", {}, 3),  # Lightning's string form of [3]
        ("2", {}, 0),  # two GPUs, this process is rank 0
        (2, {"LOCAL_RANK": "1"}, 1),  # rank 1 of two takes the second
        ([4, 5], {"LOCAL_RANK": "1"}, 5),  # rank 1 takes the second listed
        (2, {"SLURM_LOCALID": "1"}, 1),  # srun's local task id
    ],
)
def test_each_process_simulates_on_the_gpu_lightning_gives_it(devices, env, index, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert gpu_index(devices) == index


def test_value_functions_that_are_not_networks_are_left_alone():
    """An exact solution's table or an analytic V has no device to move: to_simulator skips it."""
    net = torch.nn.Linear(2, 2).to(torch.float64)
    to_simulator(torch.device("cpu"), net, object(), lambda s: s)
    assert net.weight.device.type == "cpu"
