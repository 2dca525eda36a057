"""Calibration by the simulated method of moments (MODEL.md sections 7-8), driven by Ray Tune and Optuna.

``python -m tune.calibrate conf=smoke calibrate=source`` searches the internally calibrated parameters
(section 7) for the model moments (``lotj.measure``) closest to data targets (section 8) in the weighted
distance ``(m(θ) − d)' W (m(θ) − d)``. Every evaluation is a full equilibrium solve (``lotj.train.run.train``),
warm-started from the nearest finished trial, with the same seed (common random numbers). See
docs/calibration.md.

Modules, one concern each:

- ``tune.calibrate.spec``      the target file ``conf/calibrate/*.yaml`` (targets, bounds, options), the CLI
- ``tune.calibrate.space``     parameters, bounds, the correlation-searched covariances, candidate overrides
- ``tune.calibrate.objective`` target vector, weighting matrix from simulated moments, the SMM objective
- ``tune.calibrate.evaluate``  one candidate: config checks, warm start, solve, moments, its record
- ``tune.calibrate.records``   the trial records on disk and the results table
- ``tune.calibrate.search``    the global search: Optuna's TPE or CMA-ES sampler through Ray Tune
- ``tune.calibrate.inference`` the Jacobian of the moments, standard errors, weak identification
- ``tune.calibrate.report``    the source-style table and the objective's trace figure
- ``tune.calibrate.cli``       the command line: start or resume a calibration
"""
