"""The feature store's column names: the one module that spells them.

The writer (:mod:`lcm.store.writer`) builds its Arrow schemas from these names, and the variable
catalogue (:mod:`lcm.catalogue`, a layer below the store) refuses a variable named like one of
them: a variable ``site`` would duplicate the variables table's ``site`` column, ``subject`` would
overwrite the participant IDs, and ``dataset`` would clash with the hive partition key that
pandas, pyarrow and DuckDB add when they read the folders.
"""

from __future__ import annotations

from lcm.io.qc_table import MEAN_FD, N_VOLUMES, N_VOLUMES_KEPT, T_R

# Hive partition keys, folder names rather than file columns (``atlas=<a>/dataset=<d>``);
# readers of the folders add them as columns.
PARTITION_KEYS = ("atlas", "dataset")
# Identifier columns of a connectome partition, one row per run (or window).
ID_COLUMNS = ("subject", "session", "task", "run", "run_key", "site")
# int32 window index of a row; -1 (WHOLE_RUN) marks a whole-run row.
WINDOW = "window"
WHOLE_RUN = -1
# QC columns of a connectome partition (missing allowed), a numeric subset of the QC table's
# columns (lcm.io.qc_table.QC_COLUMNS), named alike: the volume counts are int32 (schema
# version 5; float64 before), the others float64.
STORE_QC_COLUMNS = (N_VOLUMES, N_VOLUMES_KEPT, MEAN_FD, T_R)
COUNT_COLUMNS = (N_VOLUMES, N_VOLUMES_KEPT)
# The pandas dtype every reader of the store gives the counts (lcm.store.read): nullable, so a
# count unknown (imported connectomes) is <NA> and the others stay integers. Plain pandas
# turns an int32 column with a null into float64 (100.0, NaN), differently per dataset.
COUNT_DTYPE = "Int32"
# The ROIs of a run left empty (covered less than atlas.min_coverage, or all-NaN in an
# imported matrix): their edges are stored as 0, which only these columns tell from r = 0.
# int32 count and list<string> of ROI names (schema version 4).
N_EMPTY_ROIS = "n_empty_rois"
EMPTY_ROIS = "empty_rois"
EMPTY_ROI_COLUMNS = (N_EMPTY_ROIS, EMPTY_ROIS)
# The upper triangle of one run's connectome (fixed-size binary).
CONNECTOME = "connectome"
# The columns a variables partition holds before the catalogue's variables.
VARIABLES_KEYS = ("subject", "site")


def reserved_names() -> tuple[str, ...]:
    """Every column or partition key of the store's tables, which no variable may be named.

    Returns
    -------
    tuple of str
        Partition keys, identifier, window, QC, empty-ROI and connectome columns, and the
        variables table's own keys, each once, in that order.
    """
    names = (
        *PARTITION_KEYS,
        *ID_COLUMNS,
        WINDOW,
        *STORE_QC_COLUMNS,
        *EMPTY_ROI_COLUMNS,
        CONNECTOME,
        *VARIABLES_KEYS,
    )
    return tuple(dict.fromkeys(names))
