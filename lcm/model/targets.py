"""From catalogue variables to query tokens and training targets.

Each variable owns a contiguous block of decoder queries (a :class:`QueryGroup`): one query per
level of a binary or categorical variable (its logits), one per continuous or ordinal variable
(its standardised value). Targets are kept in one form for hard labels and soft pseudo-labels:
class probabilities ``[n, K]`` or standardised values ``[n]``, each with a ``present`` mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lcm.catalogue import Catalogue, Variable
from lcm.exceptions import CheckpointError, InputDataError
from lcm.store.phenotype import single_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryGroup:
    """The queries of one variable.

    Attributes
    ----------
    name : str
        Variable name.
    kind : {"continuous", "binary", "categorical", "ordinal"}
    levels : tuple of str
        Class order of the queries (binary/categorical); empty for numeric variables.
    start : int
        Index of the group's first query.
    """

    name: str
    kind: str
    levels: tuple[str, ...]
    start: int

    @property
    def is_numeric(self) -> bool:
        """True for continuous and ordinal variables (one query, regression)."""
        return self.kind in ("continuous", "ordinal")

    @property
    def size(self) -> int:
        """Number of queries of the group."""
        return 1 if self.is_numeric else len(self.levels)

    @property
    def slice(self) -> slice:
        """Positions of the group's queries."""
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class QueryLayout:
    """Ordered query groups; their queries are numbered consecutively from 0."""

    groups: tuple[QueryGroup, ...] = ()

    @property
    def n_queries(self) -> int:
        """Total number of queries."""
        return sum(g.size for g in self.groups)

    @property
    def names(self) -> list[str]:
        """Variable names in query order."""
        return [g.name for g in self.groups]

    def __getitem__(self, name: str) -> QueryGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(g.name == name for g in self.groups)

    def append(self, name: str, kind: str, levels: tuple[str, ...] = ()) -> QueryLayout:
        """A layout with one more group after the existing queries (finetuning's new labels).

        Parameters
        ----------
        name : str
            The new group's variable name.
        kind : {"continuous", "binary", "categorical", "ordinal"}
            The variable's kind.
        levels : tuple of str, default ()
            Class order, for a binary or categorical group; empty for a numeric one.

        Returns
        -------
        QueryLayout

        Raises
        ------
        InputDataError
            ``name`` is already a group of the layout.
        """
        if name in self:
            raise InputDataError(
                f"Query group {name!r} already exists in the model (groups: {self.names}).",
                hint="A finetuning label must not be one of the pretrained BEI variables.",
            )
        group = QueryGroup(name, kind, tuple(levels), self.n_queries)
        return QueryLayout((*self.groups, group))

    def to_list(self) -> list[dict[str, Any]]:
        """Plain-JSON form (stored in checkpoints)."""
        return [
            {"name": g.name, "kind": g.kind, "levels": list(g.levels), "start": g.start}
            for g in self.groups
        ]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> QueryLayout:
        """Inverse of :meth:`to_list`; checks that the groups tile the queries.

        Parameters
        ----------
        items : list of dict
            ``name``, ``kind``, ``levels`` and ``start`` of each group, in query order.

        Returns
        -------
        QueryLayout

        Raises
        ------
        CheckpointError
            A group does not start where the previous one ends.
        """
        groups = tuple(
            QueryGroup(str(i["name"]), str(i["kind"]), tuple(i["levels"]), int(i["start"]))
            for i in items
        )
        start = 0
        for group in groups:
            if group.start != start:
                raise CheckpointError(
                    f"Checkpoint query layout is inconsistent: group {group.name!r} starts at "
                    f"{group.start}, expected {start}.",
                    hint="The model.json was edited or corrupted; use the original checkpoint.",
                )
            start += group.size
        return cls(groups)


# Extra class of categorical and diagnostic (clinical) groups for samples of datasets that do
# not define the variable at all: "this dataset has no such diagnosis" is information, unlike a
# value missing for one subject (masked). Binary non-clinical variables (sex) keep two queries.
NA_LEVEL = "n/a"


def has_not_applicable(var: Variable) -> bool:
    """True for variables whose query group carries the :data:`NA_LEVEL` class.

    Parameters
    ----------
    var : Variable
        A catalogue variable.

    Returns
    -------
    bool
        Categorical variables and clinical binary ones.
    """
    return var.kind == "categorical" or (var.kind == "binary" and var.domain == "clinical")


def query_levels(var: Variable) -> tuple[str, ...]:
    """Class order of a variable's queries (its levels, then ``n/a`` where it applies).

    Parameters
    ----------
    var : Variable
        A catalogue variable.

    Returns
    -------
    tuple of str
        Empty for a numeric variable.
    """
    if var.is_numeric:
        return ()
    return (*var.levels, NA_LEVEL) if has_not_applicable(var) else tuple(var.levels)


def not_applicable(
    datasets: pd.Series, catalogue: Catalogue, layout: QueryLayout
) -> dict[str, np.ndarray]:
    """Rows whose dataset does not define a variable, for each group with an ``n/a`` class.

    Parameters
    ----------
    datasets : pandas.Series
        Dataset of each row (``Cohort.ids["dataset"]``).
    catalogue : Catalogue
        Its ``datasets`` section says which variables each dataset codes.
    layout : QueryLayout

    Returns
    -------
    dict of str to numpy.ndarray of bool
        True where the row's dataset has no column for the variable. Datasets unknown to the
        catalogue count as not applicable for every such variable.
    """
    names = datasets.astype(str).to_numpy()
    result = {}
    for group in layout.groups:
        if NA_LEVEL not in group.levels:
            continue
        coded = {d for d, c in catalogue.datasets.items() if group.name in c.columns}
        result[group.name] = ~np.isin(names, sorted(coded))
    return result


def layout_from_catalogue(
    catalogue: Catalogue, variables: pd.DataFrame | None = None, datasets: pd.Series | None = None
) -> QueryLayout:
    """One query group per catalogue variable, optionally only those observed in ``variables``.

    Parameters
    ----------
    catalogue : Catalogue
    variables : pandas.DataFrame, optional
        Training variables. When given, a variable gets queries only if its targets differ:
        two distinct observed values, or for a group with an ``n/a`` class one level and rows
        of a dataset that does not define it (the official model's "not applicable"). A query
        that never sees a contrast learns a constant (a sex every pretraining subject shares
        taught finetuning and its pseudo-labels that sex), and a diagnosis absent from
        pretraining is added at finetuning instead.
    datasets : pandas.Series, optional
        Dataset of each row of ``variables``: a variable left out is then said to be mapped by
        none of them (INFO: a diagnosis of downstream datasets), or mapped by a dataset whose
        every value of it is missing (WARNING, as is a constant one: a catalogue or phenotype
        file to check).

    Returns
    -------
    QueryLayout
    """
    layout = QueryLayout()
    reasons: dict[str, str] = {}
    for name, var in catalogue.variables.items():
        if variables is not None:
            column = variables[name] if name in variables else pd.Series(dtype=object)
            observed = column.dropna()
            contrast = observed.nunique() >= 2 or (
                len(observed) > 0
                and has_not_applicable(var)
                and (datasets is None or _lacked(name, datasets, catalogue))
            )
            if not contrast:
                reasons[name] = _why_unobserved(name, observed, catalogue, datasets)
                continue
        layout = layout.append(name, var.kind, query_levels(var))
    unmapped = [name for name, why in reasons.items() if why == _UNMAPPED]
    if unmapped:
        log.info("no queries for variables no training dataset maps: %s", unmapped)
    others = {name: why for name, why in reasons.items() if why != _UNMAPPED}
    if others:
        log.warning(
            "no queries for variables the training data cannot teach: %s",
            "; ".join(f"{name}: {why}" for name, why in others.items()),
        )
    return layout


_UNMAPPED = "no training dataset maps it"


def _lacked(name: str, datasets: pd.Series, catalogue: Catalogue) -> bool:
    """Whether a training dataset does not define variable ``name`` (its rows are ``n/a``)."""
    return any(
        d not in catalogue.datasets or name not in catalogue.datasets[d].columns
        for d in set(datasets.astype(str))
    )


def _why_unobserved(
    name: str, observed: pd.Series, catalogue: Catalogue, datasets: pd.Series | None
) -> str:
    """Why the training rows cannot teach ``name`` (``observed``: its non-missing values)."""
    if len(observed):
        return single_value(observed.iloc[0])
    if datasets is None:
        return "no value"
    present = sorted(set(datasets.astype(str)))
    mapping = [
        d for d in present if d in catalogue.datasets and name in catalogue.datasets[d].columns
    ]
    if not mapping:
        return _UNMAPPED
    which = "dataset " + mapping[0] if len(mapping) == 1 else "datasets " + ", ".join(mapping)
    return f"no value ({which} maps it but every value is missing)"


def subject_moments(values: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, float]:
    """Mean and standard deviation of ``values`` with each subject weighing the same.

    Each row weighs ``1 / (rows of its subject among the given ones)``, so a subject with two
    runs (or many windows) counts as one subject, not twice. Rows with a non-finite value are
    left out first.

    Parameters
    ----------
    values : numpy.ndarray, shape (n,)
    groups : numpy.ndarray, shape (n,), optional
        Subject of each row (default: one subject per row, the unweighted moments).

    Returns
    -------
    (mean, std)
        ``(0, 1)`` without values; ``std`` is the weighted population SD, 1 when it is 0 or
        only one row is given, so that standardising never divides by zero.
    """
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    if not keep.any():
        return 0.0, 1.0
    x = values[keep]
    if groups is None:
        weights = np.ones(len(x))
    else:
        _, inverse, counts = np.unique(
            np.asarray(groups)[keep], return_inverse=True, return_counts=True
        )
        weights = 1.0 / counts[inverse]
    mean = float(np.average(x, weights=weights))
    if len(x) < 2:
        return mean, 1.0
    std = float(np.sqrt(np.average((x - mean) ** 2, weights=weights)))
    return mean, std if std > 0 else 1.0


def fit_standardisation(
    variables: pd.DataFrame, layout: QueryLayout, groups: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each numeric variable (fit on training data only).

    Per subject (:func:`subject_moments`): with ``groups`` (the subject of each row), a subject
    with several runs weighs as much as one with a single run. A constant variable gets
    ``std = 1`` so that standardising never divides by zero.

    Parameters
    ----------
    variables : pandas.DataFrame
        The training rows' variables; a numeric group without a column counts as all missing.
    layout : QueryLayout
        Its numeric groups are fitted.
    groups : numpy.ndarray, shape (n,), optional
        The subject of each row of ``variables``; None: each row a subject.

    Returns
    -------
    dict of str to dict
        ``{"mean": float, "std": float}`` per numeric group name.
    """
    stats = {}
    for group in layout.groups:
        if not group.is_numeric:
            continue
        column = (
            variables[group.name]
            if group.name in variables
            else pd.Series(np.nan, index=variables.index)
        )
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        mean, std = subject_moments(values, groups)
        stats[group.name] = {"mean": mean, "std": std}
    return stats


@dataclass
class Target:
    """Training target of one variable.

    Attributes
    ----------
    values : torch.Tensor
        ``[n, K]`` class probabilities (one-hot for observed labels) or ``[n]`` standardised
        values; rows that are not present hold zeros.
    present : torch.Tensor
        ``[n]`` bool, True where the variable is known (observed or pseudo-labelled).
    """

    values: torch.Tensor
    present: torch.Tensor

    def take(self, index: torch.Tensor) -> Target:
        """Rows ``index``.

        Parameters
        ----------
        index : torch.Tensor
            Row indices or a bool mask.

        Returns
        -------
        Target
        """
        return Target(self.values[index], self.present[index])


Targets = dict[str, Target]


def encode_targets(
    variables: pd.DataFrame,
    layout: QueryLayout,
    stats: dict[str, dict[str, float]],
    not_applicable: dict[str, np.ndarray] | None = None,
) -> Targets:
    """Encode a variables table as targets of the layout's groups.

    Parameters
    ----------
    variables : pandas.DataFrame
        One row per sample; a group without a column is missing everywhere.
    layout : QueryLayout
    stats : dict
        Standardisation of numeric variables from :func:`fit_standardisation`.
    not_applicable : dict of str to numpy.ndarray of bool, optional
        From :func:`not_applicable`: rows whose value is missing because their dataset lacks
        the variable get the ``n/a`` class (present) instead of being masked.

    Raises
    ------
    InputDataError
        A categorical value outside the variable's levels.
    """
    n = len(variables)
    targets: Targets = {}
    for group in layout.groups:
        if group.name not in variables:
            column = pd.Series([None] * n, dtype=object)
        else:
            column = variables[group.name].reset_index(drop=True)
        if group.is_numeric:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            present = np.isfinite(values)
            st = stats[group.name]
            z = np.where(present, (values - st["mean"]) / st["std"], 0.0)
            targets[group.name] = Target(
                torch.as_tensor(z, dtype=torch.float32), torch.tensor(present)
            )
            continue
        present = column.notna().to_numpy()
        if not_applicable is not None and group.name in not_applicable:
            absent = np.asarray(not_applicable[group.name], dtype=bool) & ~present
            column = column.astype(object).where(~absent, NA_LEVEL)
            present = present | absent
        labels = column[present].astype(str)
        bad = sorted(set(labels) - set(group.levels))
        if bad:
            raise InputDataError(
                f"Variable {group.name!r}: values {bad[:5]} are not among its levels "
                f"{list(group.levels)}.",
                hint="Map the source codes to the catalogue levels in config/variables.yaml.",
            )
        codes = np.zeros(n, dtype=np.int64)
        codes[present] = [group.levels.index(v) for v in labels]
        onehot = np.zeros((n, group.size), dtype=np.float32)
        onehot[np.flatnonzero(present), codes[present]] = 1.0
        targets[group.name] = Target(torch.from_numpy(onehot), torch.tensor(present))
    return targets


def encode_bei_targets(
    variables: pd.DataFrame,
    layout: QueryLayout,
    stats: dict[str, dict[str, float]],
    datasets: pd.Series | np.ndarray | None,
    catalogue: Catalogue | None,
) -> Targets:
    """BEI targets of catalogue variables, as pretraining and finetuning both encode them.

    A categorical or diagnostic variable that a row's dataset does not record (no column for it
    in the catalogue's ``datasets`` section) gets the ``n/a`` class, present; a value missing
    for a subject whose dataset does record the variable stays missing (masked in pretraining,
    pseudo-labelled in finetuning). One function for both, so that a finetuning subject is
    never "missing" where pretraining taught the model "not applicable".

    Parameters
    ----------
    variables : pandas.DataFrame
        One row per sample.
    layout : QueryLayout
    stats : dict
        Standardisation of numeric variables (:func:`fit_standardisation`).
    datasets : pandas.Series or numpy.ndarray or None
        Dataset of each row. None (with ``catalogue`` None) when unknown: every missing value
        is then missing, none not applicable.
    catalogue : Catalogue or None
        Its ``datasets`` section says which variables each dataset records.

    Returns
    -------
    dict of Target
    """
    absent = None
    if datasets is not None and catalogue is not None:
        absent = not_applicable(pd.Series(np.asarray(datasets)), catalogue, layout)
    return encode_targets(variables.reset_index(drop=True), layout, stats, absent)


def targets_from_outputs(outputs: torch.Tensor, layout: QueryLayout) -> Targets:
    """Soft targets from model outputs ``[n, Q]``: class probabilities or standardised values.

    Used for pseudo-labels: every row is present. A pseudo-label answers which of the
    variable's own levels a subject has, so a group's :data:`NA_LEVEL` class gets probability
    exactly 0 (its logit is set to ``-inf`` before the softmax). ``n/a`` means that the row's
    dataset does not record the variable; such rows keep their own hard ``n/a`` target
    (:func:`encode_bei_targets`), which :func:`fill_missing` never replaces, and only values
    missing where the dataset records the variable are filled. Left in, the class took about
    a third of the probability of every filled row.

    Parameters
    ----------
    outputs : torch.Tensor, shape (n, Q)
        Last-layer model outputs.
    layout : QueryLayout

    Returns
    -------
    dict of Target
        ``[n, K]`` probabilities (rows summing to 1) or ``[n]`` standardised values.
    """
    targets: Targets = {}
    present = torch.ones(outputs.shape[0], dtype=torch.bool)
    for group in layout.groups:
        block = outputs[:, group.slice].detach().float()  # [n, K]
        if group.is_numeric:
            values = block[:, 0]
        else:
            if NA_LEVEL in group.levels:  # never an answer to fill in: probability 0
                na = torch.tensor([level == NA_LEVEL for level in group.levels])
                block = block.masked_fill(na.to(block.device), float("-inf"))  # a copy
            values = torch.softmax(block, dim=-1)
        targets[group.name] = Target(values.cpu(), present.clone())
    return targets


def fill_missing(own: Targets, pseudo: Targets) -> Targets:
    """Each sample's own targets, with ``pseudo`` filling only where its own are missing.

    Parameters
    ----------
    own : Targets
        The samples' observed targets.
    pseudo : Targets
        Pseudo-labels of the same rows; a variable absent here keeps its own targets.

    Returns
    -------
    Targets
        Present where either is; the variables of ``own`` only.
    """
    filled: Targets = {}
    for name, target in own.items():
        if name not in pseudo:
            filled[name] = target
            continue
        keep = target.present
        mask = keep.view(-1, *([1] * (target.values.dim() - 1)))
        values = torch.where(mask, target.values, pseudo[name].values)
        filled[name] = Target(values, keep | pseudo[name].present)
    return filled
