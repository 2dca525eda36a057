"""Training with Lightning: :class:`~lotj.train.vmodule.VModule` (V on its HJB residual),
:class:`~lotj.train.datamodule.OmegaDataModule` (Ω states and meeting draws), and
:func:`~lotj.train.run.train`, the run behind ``python -m lotj.train``.

Submodules are imported on use (``from lotj.train.run import train``), so that importing one piece
does not import every other.
"""
