"""A posteriori accuracy of a solved economy (docs/accuracy.md): the global error of V estimated along
the firm's chain of events (:mod:`lotj.accuracy.chains`, :mod:`lotj.accuracy.estimate`), and its exact
counterpart on discrete economies (:mod:`lotj.accuracy.exact_check`). Plain torch; no training code."""
