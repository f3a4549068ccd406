"""Inference exports: subject embeddings and per-query attention over ROIs, as tables.

Both are computed in eval mode without gradients, in batches, and returned as pandas frames
keyed by the run identifiers, ready for Parquet (one row per run; one column per dimension
or per ROI), so that DuckDB, pandas or R read them without our code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lcm.exceptions import AtlasError
from lcm.io.store_columns import EMPTY_ROI_COLUMNS, ID_COLUMNS, STORE_QC_COLUMNS, WINDOW
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout

BATCH = 128

# The attention table's own columns between the run identifiers and the ROIs.
PRETRAINING, QUERY = "pretraining", "query"
# The identifier columns the store's readers give a run (lcm.store.read.ids_frame): with the
# two above, the names an ROI column of the attention table must not take.
RUN_COLUMNS = ("dataset", *ID_COLUMNS, WINDOW, *STORE_QC_COLUMNS, *EMPTY_ROI_COLUMNS)

# The values of the ``pretraining`` column: what the checkpoint's training did with a run.
TRAINED, HELD_OUT, UNSEEN = "trained", "held_out", "unseen"
# A finetuned checkpoint's own training runs (its finetuning data).
FINETUNED = "finetuned"


def pretraining_roles(meta: dict, fc: np.ndarray, groups: np.ndarray) -> np.ndarray | None:
    """What the checkpoint's training did with each run: ``trained``, ``held_out``, ``unseen``,
    and for a finetuned checkpoint ``finetuned``.

    An embedding of a run the model trained on is no embedding of a new subject: an analysis
    of embeddings (a classifier on them, their spread) that mixes the two overstates what the
    model generalises. A run counts as in a ``data`` record (:mod:`lcm.model.training_data`)
    when its connectome is one of the recorded runs (``run_digests``, or ``run_sketches`` up to
    rounding: the same data under another dataset name) or its subject belongs to one of its
    ``datasets``; such runs of the ``heldout_subjects`` are ``held_out`` (they chose the epoch
    or were reported on, never trained on). A pretrained checkpoint's ``data`` gives
    ``trained`` / ``held_out``; a finetuned one's gives ``finetuned`` (it trained on every run
    it was given, labelled or not), and the runs outside it take their role in the
    pretraining of the checkpoint it started from (its ``pretrained_data``; ``unseen`` for a
    model finetuned from scratch).

    Parameters
    ----------
    meta : dict
        The checkpoint's ``model.json``.
    fc : numpy.ndarray, shape (n, R, R)
        The embedded runs' connectomes.
    groups : numpy.ndarray of str, shape (n,)
        Their subject keys (``dataset/subject``).

    Returns
    -------
    numpy.ndarray of str or None
        One value per run; None when ``model.json`` records no training data (a finetuned
        checkpoint written before it did, or an edited one).
    """
    groups = np.asarray(groups, dtype=str)
    own = _record_roles(meta.get("data"), fc, groups)
    if own is None or meta.get("kind") != "finetuned":
        return own
    base = _record_roles(meta.get("pretrained_data"), fc, groups)
    return np.where(own == UNSEEN, UNSEEN if base is None else base, FINETUNED)


def _record_roles(data: object, fc: np.ndarray, groups: np.ndarray) -> np.ndarray | None:
    """``trained`` / ``held_out`` / ``unseen`` per run by one ``data`` record; None without one."""
    from lcm.io.run_digests import connectome_digests, decode_digests, matching_sketches

    if not isinstance(data, dict) or not isinstance(data.get("datasets"), list):
        return None
    seen = np.isin([g.split("/", 1)[0] for g in groups], [str(d) for d in data["datasets"]])
    if isinstance(data.get("run_digests"), str):
        seen |= np.isin(connectome_digests(fc), decode_digests(data["run_digests"]))
    if isinstance(data.get("run_sketches"), dict) and not seen.all():
        seen |= matching_sketches(fc, data["run_sketches"])
    heldout = np.isin(groups, [str(g) for g in data.get("heldout_subjects") or []])
    return np.where(seen, np.where(heldout, HELD_OUT, TRAINED), UNSEEN)


def check_roi_columns(
    roi_names: list[str], atlas: str | None = None, id_columns: list[str] | None = None
) -> None:
    """Refuse ROI names that would repeat a column name of the attention table.

    The table holds one column per ROI named by the ROI after the run identifiers,
    ``pretraining`` and ``query`` (:func:`attention_frame`), and its readers take the ROIs by
    those names (:func:`lcm.model.export_tables.read_attention_table`): an ROI named
    ``session`` or ``query`` gave two columns of one name, which pyarrow refused only when the
    table was written, after every run was embedded.

    Parameters
    ----------
    roi_names : list of str
        The atlas's ROI names (a checkpoint's ``roi_names``, or the store's).
    atlas : str, optional
        Its name, said in the error.
    id_columns : list of str, optional
        The identifier columns of the embedded runs; default :data:`RUN_COLUMNS`, those the
        store's readers give.

    Raises
    ------
    AtlasError
        An ROI named like one of the table's other columns.
    """
    taken = {*(RUN_COLUMNS if id_columns is None else id_columns), PRETRAINING, QUERY}
    clash = [name for name in roi_names if name in taken]
    if clash:
        raise AtlasError(
            f"Atlas {atlas or '(given)'!r} has ROI(s) named {clash}, like column(s) of the "
            f"query attention table (run identifiers, {PRETRAINING!r}, {QUERY!r}), which holds "
            "one column per ROI named by the ROI.",
            hint=f"Leave out --attention-out (the embeddings table has no ROI columns), or "
            f"rename the ROI(s) in the atlas's labels (e.g. {clash[0]}_roi) and build the store "
            "and the checkpoint from them again.",
        )


def query_names(layout: QueryLayout) -> list[str]:
    """One name per query: ``variable`` for numeric groups, ``variable=level`` for classes.

    Parameters
    ----------
    layout : QueryLayout
        The model's query layout.

    Returns
    -------
    list of str
        In query order.
    """
    names = []
    for group in layout.groups:
        names.extend(
            [group.name] if group.is_numeric else [f"{group.name}={lv}" for lv in group.levels]
        )
    return names


@torch.no_grad()
def embeddings(model: LCM, fc: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Subject embeddings ``[n, d_model]`` (float32) from :meth:`LCM.embed`.

    Parameters
    ----------
    model : LCM
        Put in eval mode.
    fc : numpy.ndarray, shape (n, R, R)
        Correlation matrices, read in batches of :data:`BATCH`.
    device : torch.device or str, default "cpu"
        Where the model's parameters are; each batch is sent there.

    Returns
    -------
    numpy.ndarray, shape (n, d_model), float32
    """
    model.eval()
    parts = [
        model.embed(torch.as_tensor(fc[i : i + BATCH], dtype=torch.float32, device=device))
        for i in range(0, len(fc), BATCH)
    ]
    return torch.cat(parts).float().cpu().numpy()


@torch.no_grad()
def query_attention(
    model: LCM, fc: np.ndarray, device: torch.device | str = "cpu", layer: int = -1
) -> np.ndarray:
    """Cross-attention of each query over the ROIs ``[n, Q, R]`` in decoder ``layer``.

    Parameters
    ----------
    model : LCM
        Put in eval mode.
    fc : numpy.ndarray, shape (n, R, R)
        Correlation matrices, read in batches of :data:`BATCH`.
    device : torch.device or str, default "cpu"
        Where the model's parameters are; each batch is sent there.
    layer : int, default -1
        Decoder layer index (Python indexing: -1 is the last).

    Returns
    -------
    numpy.ndarray, shape (n, Q, R), float32
        Rows sum to 1 over the ROIs (heads averaged, :meth:`LCM.attention`).
    """
    model.eval()
    parts = [
        model.attention(torch.as_tensor(fc[i : i + BATCH], dtype=torch.float32, device=device))[
            layer
        ]
        for i in range(0, len(fc), BATCH)
    ]
    return torch.cat(parts).float().cpu().numpy()


def embedding_frame(ids: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """Run identifiers followed by columns ``emb_000`` ... (one per embedding dimension).

    Parameters
    ----------
    ids : pandas.DataFrame
        Run identifiers, one row per run (index dropped).
    values : numpy.ndarray, shape (n, d)
        The runs' embeddings (:func:`embeddings`), stored as float32.

    Returns
    -------
    pandas.DataFrame
        Column names zero-padded to at least three digits.
    """
    width = max(3, len(str(values.shape[1] - 1)))
    columns = [f"emb_{i:0{width}d}" for i in range(values.shape[1])]
    emb = pd.DataFrame(values.astype(np.float32), columns=columns)
    return pd.concat([ids.reset_index(drop=True), emb], axis=1)


def attention_frame(
    ids: pd.DataFrame, attention: np.ndarray, layout: QueryLayout, roi_names: list[str]
) -> pd.DataFrame:
    """Long-by-query table: run identifiers, ``query``, then one column per ROI.

    Parameters
    ----------
    ids : pandas.DataFrame
        ``n`` run identifiers.
    attention : numpy.ndarray, shape (n, Q, R)
    layout : QueryLayout
        Names the ``Q`` queries.
    roi_names : list of str
        Names the ``R`` ROIs.

    Returns
    -------
    pandas.DataFrame
        ``n * Q`` rows: the identifiers, ``query``, then the ROI columns.

    Raises
    ------
    AtlasError
        An ROI named like an identifier column or ``query`` (:func:`check_roi_columns`).
    """
    check_roi_columns(roi_names, id_columns=[*ids.columns])
    n, q, r = attention.shape
    names = query_names(layout)
    if len(names) != q or len(roi_names) != r:
        raise ValueError(
            f"attention {attention.shape} vs {len(names)} queries, {len(roi_names)} ROIs"
        )
    rows = ids.reset_index(drop=True).loc[np.repeat(np.arange(n), q)].reset_index(drop=True)
    rows[QUERY] = np.tile(names, n)
    values = pd.DataFrame(attention.reshape(n * q, r).astype(np.float32), columns=list(roi_names))
    return pd.concat([rows, values], axis=1)
