"""The economy in motion: the simulator, the distributions χ, χ^N, χ^E, Π, ω.

- :mod:`lotj.sim.simulator`: the vectorised simulator (``Simulator``), docs/simulator.md;
- :mod:`lotj.sim.population`, :mod:`lotj.sim.events`, :mod:`lotj.sim.neighbours`,
  :mod:`lotj.sim.draws`: its state, per-step draws, value evaluations and G_w/G_f draws;
- :mod:`lotj.sim.stats`: statistics of a simulated window; :mod:`lotj.sim.convergence`: the
  stopping rule of the joint loop;
- :mod:`lotj.sim.panel`: the annual panel and its Parquet files, docs/panel.md;
- :mod:`lotj.sim.distributions`: χ, χ^N, χ^E and Π of a snapshot of the economy;
- :mod:`lotj.sim.market`: the market the value equations integrate over (``Market``: pooled
  cross-sections, ω, s^N, s^E, the split of firms), with :mod:`lotj.sim.omega` (Ω, the training
  distribution) and :mod:`lotj.sim.meeting_draws` (the χ^N, χ^E draws and exact sums).
"""
