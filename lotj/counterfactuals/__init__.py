"""The structural decomposition (MODEL.md sections 9.2 and 10): the baseline and its counterfactual economies,
each solved anew on Ray (the baseline first, the counterfactuals warm-started from it), and their table.

- :mod:`lotj.counterfactuals.economies`: the economies of a set and their config overrides;
- :mod:`lotj.counterfactuals.spec`: the command line, the options on Ray and ``counterfactuals.yaml``;
- :mod:`lotj.counterfactuals.runner`: the solves as Ray Tune trials, and ``resume``;
- :mod:`lotj.counterfactuals.table`: ``runs.csv``, ``counterfactuals.csv`` and ``.md``;
- :mod:`lotj.counterfactuals.figure`: ``counterfactuals.png``.

``python -m lotj.counterfactuals conf=NAME [set=SET] [--seeds K] [key=value ...]``; docs/counterfactuals.md.
"""
