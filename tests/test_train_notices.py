"""A run prints what concerns its user: Lightning's advertisements and foreign deprecations are dropped, the
rest is kept (lotj.train.logging.quiet_foreign_notices)."""

import logging
import warnings

from lotj.train.logging import quiet_foreign_notices


def test_lightning_tips_are_dropped_and_other_notices_kept(caplog):
    quiet_foreign_notices()
    quiet_foreign_notices()  # idempotent: one filter
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert sum(type(f).__name__ == "_DropAdvertisements" for f in log.filters) == 1
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("💡 Tip: For seamless cloud logging, try installing litlogger")
        log.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_foreign_deprecation_is_silenced_and_ours_are_not():
    quiet_foreign_notices()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_foreign_notices()  # re-installs the filters in front of "default"
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("economy.n_max binds often", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["economy.n_max binds often"]
