"""Decisions from kept pools (lotj/sim/pooled.py; MODEL.md section 6, docs/simulator.md "Cost")."""

from __future__ import annotations

import torch

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.nets import ValueNet
from lotj.sim.pooled import PerStepEncoding, PooledValues
from lotj.sim.simulator import Simulator
from lotj.sim.stats import COUNTERS


def make_net(p: EconomyParams) -> ValueNet:
    torch.manual_seed(0)
    net = ValueNet(p, embed_dim=8, phi_width=16, phi_depth=2, rho_width=16, rho_depth=2).to(torch.float64)
    with torch.no_grad():  # a random head and worker value, so that decisions differ across states
        for module in (net.head[-1], net.worker_value[-1], net.firm_type[-1]):
            for prm in module.parameters():
                prm.normal_(0.0, 0.1)
    return net


def decision_sets(sim: Simulator, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pop = sim.pop
    gen = torch.Generator().manual_seed(seed)
    emp = (pop.firm >= 0).nonzero().squeeze(1)
    deciders = emp[torch.randperm(emp.numel(), generator=gen)[:count]].sort().values
    movers = torch.randperm(pop.n_workers, generator=gen)[:count]
    dests = torch.randint(0, pop.n_firms, (count,), generator=gen)
    keep = pop.size[dests] < pop.n_max
    return deciders, movers[keep], dests[keep]


def test_pooled_surpluses_equal_the_per_step_encoding():
    p = EconomyParams(n_max=8)
    net = make_net(p)
    sim = Simulator(p, 300, 0.02, seed=4)
    sim.advance(net, 2.0)
    deciders, movers, dests = decision_sets(sim, 400, 1)
    # combinations of two and three additions to one firm with room for all (a firm's later meetings in a step)
    same = (dests.unsqueeze(1) == dests.unsqueeze(0)).triu(1).nonzero()
    same = same[sim.pop.size[dests[same[:, 0]]] <= p.n_max - 3]
    assert same.shape[0] > 5
    combos = torch.cat([same, torch.full((same.shape[0], 1), -1)], 1)  # pairs
    triples = [(i, j, k) for i, j in same.tolist() for k in range(j + 1, dests.numel()) if dests[k] == dests[i]]
    assert triples
    combos = torch.cat([combos, torch.tensor(triples)])
    own_ref, hire_ref, combo_ref = sim._surpluses(PerStepEncoding(net), deciders, movers, dests, combos)
    sim._pooled = PooledValues(net, sim.pop)
    own, hire, combo = sim._surpluses(net, deciders, movers, dests, combos)
    torch.testing.assert_close(own, own_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(hire, hire_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(combo, combo_ref, rtol=1e-10, atol=1e-10)
    # a combination's value is V of the firm with those workers in it
    i, j, k = triples[0]
    s = sim.pop.firm_batch(dests[i].view(1))
    for w in (i, j, k):
        s = s.add(sim.pop.h[movers[w]].view(1), sim.pop.a[movers[w]].view(1))[0]
    torch.testing.assert_close(combo[-len(triples)], net.value(s)[0], rtol=1e-10, atol=1e-10)


def test_kept_terms_follow_learning_retirements_and_firm_deaths():
    p = EconomyParams(n_max=8, delta_r=2.0, delta_f=1.0, gamma_e=5.0)  # many changes per step
    net = make_net(p)
    sim = Simulator(p, 200, 0.02, seed=5)
    sim._pooled = PooledValues(net, sim.pop)
    with torch.no_grad():
        for _ in range(25):
            sim._step(net)
    sim.pop.check()
    kept = sim._pooled
    fresh = PooledValues(net, sim.pop)
    torch.testing.assert_close(kept.workers, fresh.workers, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kept.firms, fresh.firms, rtol=1e-12, atol=1e-12)
    counts = sim.acc.counts
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0  # deaths, learning, retirements happened


def test_network_paths_are_reproducible_and_single_precision_leaves_the_network_alone():
    p = EconomyParams(n_max=8)
    net = make_net(p)
    runs = []
    for dtype in (None, None, torch.float32):
        sim = Simulator(p, 200, 0.02, seed=6)
        sim.decision_dtype = dtype
        sim.advance(net, 1.0)
        sim.advance(net, 0.5)
        runs.append(sim.pop)
    assert net.dtype == torch.float64
    for k in ("firm", "slot", "h", "worker_id"):
        assert torch.equal(getattr(runs[0], k), getattr(runs[1], k)), k
    runs[2].check()
    # no decision of this path lies within single precision of indifference: the same path, match by match
    for k in ("firm", "slot", "h", "worker_id"):
        assert torch.equal(getattr(runs[0], k), getattr(runs[2], k)), k
    # and the decisions were made in single precision: the values differ from double in the low bits only
    pop = runs[2]
    firms = torch.arange(pop.n_firms)
    none = torch.zeros(0, dtype=torch.int64)
    v64 = PooledValues(net, pop).values(pop, firms, none, none, none, none)
    single = PooledValues(net, pop, torch.float32)
    assert single.workers.dtype == torch.float32 and single.vf.dtype == torch.float32
    v32 = single.values(pop, firms, none, none, none, none)
    assert v32.dtype == torch.float32
    rel = (v32.double() - v64).abs() / v64.abs()
    assert 0 < rel.max() < 1e-5


def test_decision_precision_is_read_from_the_config():
    assert Simulator.from_config(load_config(["conf=baseline", "sim.n_firms=50"])).decision_dtype is None
    assert Simulator.from_config(load_config(["conf=smoke", "sim.n_firms=50"])).decision_dtype == torch.float32
    cfg = load_config(["conf=smoke", "sim.n_firms=50", "sim.decision_precision=64"])
    assert Simulator.from_config(cfg).decision_dtype is None


def test_kept_values_give_the_path_of_evaluating_every_value():
    """V of a firm whose state has not changed is reused (Population.version): the path must be the one
    of evaluating every value at every step, with deaths, learning, breaks and moves all at work."""
    p = EconomyParams(n_max=8, delta_f=0.05)
    net = make_net(p)
    runs, sims, made = [], [], []
    for reuse in (True, False):
        sim = Simulator(p, 300, 0.02, seed=11)
        sim.reuse_values = reuse
        sim.advance(net, 2.0)
        before = sim.head_evaluations
        sim.advance(net, 1.0)  # a new run_steps call: the kept values start afresh
        made.append(sim.head_evaluations - before)
        runs.append(sim.pop)
        sims.append(sim)
    kept, every = sims
    for k in ("firm", "slot", "h", "worker_id", "firm_id", "z"):
        assert torch.equal(getattr(runs[0], k), getattr(runs[1], k)), k
    assert torch.equal(kept.acc.counts, every.acc.counts)
    needed = int(every.acc.counts[COUNTERS.index("value_evaluations")])  # the last advance's window
    assert made[1] == needed
    # reuse saves a substantial share of the evaluations (about a third at these rates)
    assert made[0] < 0.85 * made[1]


def test_a_firm_change_gives_a_version_no_state_had_before():
    p = EconomyParams(n_max=4)
    pop = Simulator(p, 10, 0.02, seed=1).pop
    seen = set(pop.version.tolist())
    worker = int((pop.firm >= 0).nonzero()[0])
    firm = int(pop.firm[worker])
    pop.detach(torch.tensor([worker]))
    after_detach = int(pop.version[firm])
    assert after_detach not in seen
    other = (firm + 1) % pop.n_firms
    free = int((pop.slot_worker[other] < 0).nonzero()[0])
    pop.attach(torch.tensor([worker]), torch.tensor([other]), torch.tensor([free]))
    assert int(pop.version[other]) > after_detach and int(pop.version[firm]) == after_detach


def _tensors(obj, name=""):
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{name}.{k}")
    elif isinstance(obj, (list, tuple)):
        for k, v in enumerate(obj):
            yield from _tensors(v, f"{name}[{k}]")


def test_the_simulated_state_stays_usable_by_autograd():
    """The step runs in inference mode; the state it leaves (population, statistics, draw buffers refilled
    mid-run) must be ordinary tensors, or training on states sampled from it would fail."""
    p = EconomyParams(n_max=8, delta_r=2.0, delta_f=0.5, gamma_e=2.0)
    net = make_net(p)
    sim = Simulator(p, 300, 0.02, seed=3)
    drawn_before = sim.new_workers.x
    sim.advance(net, 3.0)
    assert sim.new_workers.x is not drawn_before  # the buffer of new workers was refilled during the run
    state = {"sim": sim.state_dict(), "pop": vars(sim.pop), "acc": vars(sim.acc)}
    inference = [name for name, t in _tensors(state) if t.is_inference()]
    assert not inference, inference
    batch = sim.pop.firm_batch(torch.arange(50))
    net(batch).sum().backward()
    assert all(prm.grad is not None for prm in net.head.parameters())


def test_every_decision_sees_the_current_terms_of_its_workers(monkeypatch):
    """The kept terms of every worker a decision reads (employed workers in the pools, the workers who
    meet a firm) equal a fresh encoding at that moment: a retired seat's new worker can meet a firm later
    in the same step (docs/simulator.md, the priority rule), so its terms must be renewed at once."""
    p = EconomyParams(n_max=8, delta_r=1.0, psi_n=3.0)  # many retirements and meetings per step
    net = make_net(p)
    seen = {"movers": 0, "renewed": 0}
    evaluate = PooledValues.values

    def checked(self, pop, firms, rem_row, deciders, add_row, movers, combos=None):
        fresh = self.vf.worker_terms(pop.h, pop.a)
        employed = pop.firm >= 0
        torch.testing.assert_close(self.workers[employed], fresh[employed], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(self.workers[movers], fresh[movers], rtol=1e-12, atol=1e-12)
        seen["movers"] += movers.numel()
        return evaluate(self, pop, firms, rem_row, deciders, add_row, movers, combos)

    monkeypatch.setattr(PooledValues, "values", checked)
    sim = Simulator(p, 200, 0.1, seed=8)
    retire = sim.pop.worker_id.clone()
    sim.advance(net, 2.0)
    assert seen["movers"] > 1000
    assert int((sim.pop.worker_id != retire).sum()) > 500  # most seats were renewed
