"""The W config groups (wnet, wsolver): defaults, overrides, refusals naming the key."""

import pytest

from lotj.config import load_config
from lotj.errors import ConfigError


def test_overrides_reach_the_w_groups():
    cfg = load_config(["conf=smoke", "wnet.kinks=6", "wsolver.m_pi=48", "wsolver.unbiased=true", "solver.stages=[v,w]"])
    assert cfg.wnet.kinks == 6 and cfg.wsolver.m_pi == 48 and cfg.wsolver.unbiased
    assert list(cfg.solver.stages) == ["v", "w"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("wnet.kinks=0", "wnet.kinks"),
        ("wnet.activation=relu6", "wnet.activation"),
        ("wsolver.m_pi=0", "wsolver.m_pi"),
        ("wsolver.lr=-1", "wsolver.lr"),
        ("wsolver.lr_decay=1.5", "wsolver.lr_decay"),
        ("wsolver.wage_mix=1.2", "wsolver.wage_mix"),
        ("wsolver.wage_margin=-0.1", "wsolver.wage_margin"),
        ("wsolver.refresh_years=nan", "wsolver.refresh_years"),
        ("wsolver.settle_years=-1", "wsolver.settle_years"),
        ("wsolver.chain_bargaining=1.5", "wsolver.chain_bargaining"),
        ("wnet.set_kinks=true wnet.surplus_input=false", "wnet.set_kinks"),
    ],
)
def test_bad_w_values_are_refused(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(["conf=smoke", *override.split()])
