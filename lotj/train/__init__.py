"""Training with Lightning, and no economics: :class:`~lotj.train.vmodule.VModule` (V on its HJB residual),
:class:`~lotj.train.datamodule.OmegaDataModule` (batches of the market's Ω states and meeting draws,
:class:`lotj.sim.market.Market`), the W stage's module and DataModule, the simulator callback, and
:func:`~lotj.train.run.train`, the run behind ``python -m lotj.train``.

Submodules are imported on use (``from lotj.train.run import train``), so that importing one piece
does not import every other.
"""
