"""The in-memory view of (part of) the feature store that models and evaluation consume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lcm.io.run_digests import data_fingerprint

if TYPE_CHECKING:
    from lcm.catalogue import Catalogue


@dataclass
class Cohort:
    """Runs of one atlas with their connectomes and brain–environment variables, row-aligned.

    Attributes
    ----------
    ids : pandas.DataFrame
        One row per run: ``dataset, subject, session, task, run, site`` (strings; session/site
        may be empty). ``subject`` is unique only within ``dataset``. From the store also
        ``window`` (int): -1 for a whole run, 0, 1, ... when the run was cut into windows, each
        window then a row (a sample) of its own.
    fc : numpy.ndarray, shape (n_runs, n_rois, n_rois), float32
        Pearson correlation matrices (of the run or window), diagonal 1.
    variables : pandas.DataFrame
        Same rows as ``ids``; one column per catalogue variable: float64 for continuous and
        ordinal, object (level strings) for binary and categorical; missing is NaN/None.
    roi_names : list of str
    atlas : str
    """

    ids: pd.DataFrame
    fc: np.ndarray
    variables: pd.DataFrame
    roi_names: list[str]
    atlas: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def groups(self) -> np.ndarray:
        """Subject key per run (``dataset/subject``): the unit that never straddles folds."""
        return (self.ids["dataset"] + "/" + self.ids["subject"]).to_numpy()

    def fingerprint(self, catalogue: Catalogue) -> str:
        """The data fingerprint of these runs and their variables as ``catalogue`` types them
        (:func:`lcm.io.run_digests.data_fingerprint`): a pretraining checkpoint records its
        cohort's (``model.json``), the ridge maps fitted on the same cohort record it too.

        Parameters
        ----------
        catalogue : Catalogue
            The catalogue that types :attr:`variables` (its ``to_dict()`` enters the fingerprint).

        Returns
        -------
        str
        """
        return data_fingerprint(
            self.ids, self.fc, variables=self.variables, catalogue=catalogue.to_dict()
        )

    def subset(self, mask: np.ndarray) -> Cohort:
        """Rows selected by a boolean mask or an index array.

        Parameters
        ----------
        mask : numpy.ndarray
            A boolean array of one entry per row, or integer row positions (kept in their order).

        Returns
        -------
        Cohort
            The selected rows, renumbered from 0; ROI names and atlas unchanged.
        """
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return Cohort(
            ids=self.ids.iloc[idx].reset_index(drop=True),
            fc=self.fc[idx],
            variables=self.variables.iloc[idx].reset_index(drop=True),
            roi_names=self.roi_names,
            atlas=self.atlas,
        )


@dataclass
class StreamedCohort:
    """A :class:`Cohort` whose connectomes stay in the feature store, streamed when used.

    Pretraining with ``data_loading: stream`` holds the runs' identifiers and variables only
    (:func:`lcm.store.read.load_streamed_cohort`) and reads the connectomes through
    :class:`lcm.store.loader.ConnectomeStream`, a batch at a time: memory does not grow with the
    cohort's connectomes (``n_runs * R * R * 4`` bytes loaded whole).

    Attributes
    ----------
    ids, variables, roi_names, atlas
        As :class:`Cohort`'s.
    store : pathlib.Path
        The feature store the connectomes are read from.
    datasets : list of str
        The datasets streamed, in the order of the rows.
    exclude : pandas.DataFrame, optional
        The table (``dataset``, ``subject``) whose subjects were left out when the cohort was
        read (downstream test subjects): the stream leaves them out too.
    """

    ids: pd.DataFrame
    variables: pd.DataFrame
    roi_names: list[str]
    atlas: str
    store: Path
    datasets: list[str]
    exclude: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def groups(self) -> np.ndarray:
        """Subject key per run (``dataset/subject``), as :attr:`Cohort.groups`."""
        return (self.ids["dataset"] + "/" + self.ids["subject"]).to_numpy()

    def subset(self, mask: np.ndarray) -> StreamedCohort:
        """Rows selected by a boolean mask or an index array (identifiers and variables).

        Parameters
        ----------
        mask : numpy.ndarray
            A boolean array of one entry per row, or integer row positions (kept in their order).

        Returns
        -------
        StreamedCohort
            The selected rows, renumbered from 0, reading from the same store, datasets and
            exclusions.
        """
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return StreamedCohort(
            ids=self.ids.iloc[idx].reset_index(drop=True),
            variables=self.variables.iloc[idx].reset_index(drop=True),
            roi_names=self.roi_names,
            atlas=self.atlas,
            store=self.store,
            datasets=self.datasets,
            exclude=self.exclude,
        )
