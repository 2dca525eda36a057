"""Ray Tune sweeps over lotj's configuration: architectures, solver settings and economic parameters.

``python -m tune.sweep conf=smoke tune=arch`` runs one Ray Tune experiment whose trials call the same
training function as ``python -m lotj.train`` (``lotj.train.run.train``), each with its own overrides.

Modules:

- ``tune.spec``     the sweep description: ``conf/tune/*.yaml`` (``sweep:`` options and ``space:``), CLI parsing
- ``tune.trial``    what runs inside one trial: config, per-epoch reports and checkpoints to Tune
- ``tune.tracking`` W&B run names and ids of trials (one run per trial, one group per sweep)
- ``tune.results``  the results table of a sweep directory and its best trial
- ``tune.cluster``  waiting for the nodes of a Ray cluster (used by ``slurm/tune.sh``)
- ``tune.sweep``    the command line: start or resume a sweep
"""
