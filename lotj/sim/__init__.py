"""The economy in motion: the simulator, the distributions χ, χ^N, χ^E, Π, ω.

- :mod:`lotj.sim.simulator`: the vectorised simulator (``Simulator``), docs/simulator.md;
- :mod:`lotj.sim.population`, :mod:`lotj.sim.events`, :mod:`lotj.sim.neighbours`,
  :mod:`lotj.sim.draws`: its state, per-step draws, value evaluations and G_w/G_f draws;
- :mod:`lotj.sim.stats`: statistics of a simulated window; :mod:`lotj.sim.convergence`: the
  stopping rule of the joint loop;
- :mod:`lotj.sim.panel`: the annual panel and its Parquet files, docs/panel.md;
- :mod:`lotj.sim.distributions`, :mod:`lotj.sim.samplers`: χ, χ^N, χ^E (with Δ) and Π (Ω, the
  training distribution built on them, is :mod:`lotj.train.omega`);
- :mod:`lotj.sim.reference`: analytic value functions for checking the simulator.
"""
