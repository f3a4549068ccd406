"""Semi-supervised finetuning of a pretrained LCM on a binary diagnosis, scikit-learn style.

The paper's step that the official code lacks: two diagnosis queries are appended to the
pretrained model, and the loss is cross-entropy on the labelled subjects plus ``pseudo_weight``
times the BEI loss, whose targets are each subject's own variables and, where those are
missing, soft pseudo-labels from the frozen pretrained model. Pseudo-labels are computed in
``fit`` on the subjects passed to it (the training fold) only.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lcm.catalogue import Catalogue
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.atomic import write_tsv
from lcm.io.output_set import written_together
from lcm.io.provenance import provenance_path
from lcm.model.checkpoint import (
    checkpoint_layout,
    data_fingerprint,
    save_checkpoint,
)
from lcm.model.checkpoint_meta import META_NAME, WEIGHTS_NAME
from lcm.model.lcm import LCM
from lcm.model.losses import variable_losses
from lcm.model.targets import (
    QueryLayout,
    Target,
    Targets,
    encode_bei_targets,
    fill_missing,
    targets_from_outputs,
)
from lcm.model.training_data import training_data
from lcm.model.transfer import to_device
from lcm.train.confident import (
    FALLBACK_CAP,
    FALLBACK_THRESHOLD,
    cap_labels,
    choose_thresholds,
    confident_labels,
    diagnosis_record,
    ratio_cap,
    subject_means,
    threshold_plan,
)
from lcm.train.finetuned import FinetunedLCM
from lcm.train.loop import (
    autocast,
    history_frame,
    layer_lr_scales,
    pick_device,
    seed_everything,
    train_epochs,
)
from lcm.train.outputs import CHECKPOINT_FILES, HISTORY_NAME
from lcm.train.pretrain import predict_outputs
from lcm.train.probe import LinearProbe, fit_probe
from lcm.train.settings import resolve_settings

log = logging.getLogger(__name__)

# Writes the provenance records of the model's files (given them), returning the records'
# paths: ``lcm finetune``'s, called inside their set (as lcm.train.pretrain's Recorder).
Recorder = Callable[[list[Path]], list[Path]]

WEIGHT_DECAY = 0.01


class LCMClassifier(FinetunedLCM):
    """Finetune an LCM checkpoint into a binary classifier (fit / predict_proba / predict / save).

    Parameters
    ----------
    checkpoint : path-like or None
        Pretrained checkpoint folder. ``None`` only with ``init="scratch"`` (a tiny-preset model
        without BEI queries).
    label : str
        Name of the diagnosis (the new query group).
    levels : tuple of (str, str)
        ``(negative, positive)`` level names; ``y == 1`` means ``levels[1]``.
    settings : dict
        Config ``evaluate.finetune`` section: epochs, batch_size, lr, pseudo_labels,
        pseudo_weight (missing keys take the schema defaults).
    seed : int
    init : {"pretrained", "scratch"}
        Start from the pretrained weights, or from a fresh initialisation of the same
        architecture (the "same transformer from scratch" baseline; it uses no pseudo-labels,
        which would carry pretrained knowledge).
    device : str, optional
        Default CUDA when available, else CPU.
    atlas : str, optional
        Atlas of the connectomes ``fit`` gets; a checkpoint of another atlas is refused.
    roi_names : list of str, optional
        Their ROI names in row order; a checkpoint of other ROIs or another order is refused
        (``None``: only the ROI count is checked).
    catalogue : Catalogue, optional
        The catalogue the ``fit`` data were loaded with: with ``groups`` in ``fit``, a BEI
        variable a row's dataset does not record gets the ``n/a`` class, as in pretraining,
        not a pseudo-label (``None``: every missing BEI value is pseudo-labelled).

    Attributes
    ----------
    model_ : LCM
        The finetuned model (eval mode).
    layout_ : QueryLayout
        Query groups, the diagnosis last.
    pseudo_targets_ : dict of Target or None
        Pseudo-labels computed on the ``fit`` data (None when not used).
    history_ : list of dict
        One row per epoch (``method: probe``: one row, the training log-loss and ``C``).
    probe_ : LinearProbe or None
        ``method: probe``: the logistic regression on the frozen model's readouts
        (:mod:`lcm.train.probe`); ``model_`` is then the pretrained model itself.
    classes_ : numpy.ndarray
        ``[0, 1]``.
    data_ : dict or None
        The runs and subjects of the ``fit`` data (:func:`lcm.model.training_data.training_data`),
        ``model.json``'s ``data``; None when ``fit`` had no ``groups``.
    """

    # The protocol passes each run's subject, so the inner split keeps a subject's runs together.
    uses_groups = True

    def __init__(
        self,
        checkpoint: str | Path | None,
        label: str,
        levels: tuple[str, str],
        settings: dict[str, Any],
        seed: int,
        init: str = "pretrained",
        *,
        device: str | None = None,
        atlas: str | None = None,
        roi_names: list[str] | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.label = label
        self.levels = levels
        self.settings = settings
        self.seed = seed
        self.init = init
        self.device = device
        self.atlas = atlas
        self.roi_names = roi_names
        self.catalogue = catalogue

    # -- fitting --------------------------------------------------------------------------

    def fit(
        self,
        fc: np.ndarray,
        y: np.ndarray,
        variables: pd.DataFrame | None = None,
        groups: np.ndarray | None = None,
    ) -> LCMClassifier:
        """Finetune on ``fc`` with labels ``y`` (-1 = unlabeled) and the subjects' own variables.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R), float32
        y : numpy.ndarray of int, shape (n,)
            1 for ``levels[1]``, 0 for ``levels[0]``, -1 for unlabeled (BEI loss only).
        variables : pandas.DataFrame, optional
            ``n`` rows of catalogue variables (BEI targets where present).
        groups : numpy.ndarray, optional
            Subject of each row as ``dataset/subject`` keys (``Cohort.groups``): the inner
            validation split of the diagnosis pseudo-labels keeps a subject's runs together,
            pseudo-labels are chosen per subject, and the dataset part says which BEI
            variables a row's dataset records (default: one subject per row, datasets
            unknown).

        Returns
        -------
        LCMClassifier
            ``self``.
        """
        settings = resolve_settings("finetune", self.settings)
        y = self._check_fit_inputs(fc, y, variables)
        dev = pick_device(self.device)
        base, meta = self._base_model(fc.shape[1])
        bei_layout = checkpoint_layout(meta, self.checkpoint) if meta else QueryLayout()
        if self.label in bei_layout:
            if meta.get("kind") == "pretrained":
                raise InputDataError(
                    f"Checkpoint {self.checkpoint} was pretrained with {self.label!r} as a "
                    "brain-environment variable (a pretraining dataset's catalogue coding "
                    "maps it): finetuning cannot add it as the diagnosis.",
                    hint=f"Pretrain without it: remove {self.label} from "
                    f"{self._coding_keys(meta)}.",
                )
            raise InputDataError(
                f"Label {self.label!r} is already a query group of checkpoint {self.checkpoint}.",
                hint="Finetune from the pretrained checkpoint, not from a finetuned one.",
            )
        self.probe_ = None
        if settings["method"] == "probe" and self.init == "pretrained":
            return self._fit_probe(base.to(dev), meta, bei_layout, fc, y, groups, settings)
        layout = bei_layout.append(self.label, "binary", tuple(self.levels))
        use_pseudo = settings["pseudo_labels"] and self.init == "pretrained"
        bei, self.pseudo_targets_, self.bei_pseudo_filled_ = bei_targets(
            base,
            meta,
            bei_layout,
            fc,
            variables,
            use_pseudo,
            dev,
            datasets=self._row_datasets(groups),
            catalogue=self.catalogue,
        )
        self._log_counts(y, bei)
        train = _Finetuning(base, self.init, bei, layout, self.label, settings, self.seed, dev)

        # (b) Confident diagnosis pseudo-labels for unlabeled subjects, threshold chosen on an
        # inner validation split of the labelled fit() subjects (a fixed high one when too few).
        y_final = y
        if settings["diagnosis_pseudo_labels"] and self.init == "pretrained":
            # The inner validation subjects lose their clinical BEI targets too (an ADOS score
            # gives the diagnosis away), as subjects the label fraction leaves unlabeled do.
            clinical = self._clinical(bei)
            y_final = self._confident_pseudo_labels(
                y,
                groups,
                settings,
                lambda hidden, rows: self._finetuned_proba(
                    train.without(clinical, rows), fc, hidden
                ),
            )
        else:
            self.diagnosis_pseudo_ = self._diagnosis_record("off", y, groups)
        self.model_, self.history_ = train(fc, y_final)
        self.layout_ = layout
        self.meta_ = meta
        self.settings_ = settings
        self.fingerprint_ = data_fingerprint(pd.DataFrame({"y": y}), fc)
        self.data_ = self._training_data(fc, groups)
        self.classes_ = np.array([0, 1])
        return self

    def _fit_probe(
        self,
        base: LCM,
        meta: dict[str, Any],
        bei_layout: QueryLayout,
        fc: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None,
        settings: dict[str, Any],
    ) -> LCMClassifier:
        """``method: probe``: a logistic regression on the frozen model's readouts
        (:mod:`lcm.train.probe`); diagnosis pseudo-labels as in finetuning (self-training)."""
        features, groups, kind = self._probe_inputs(base, meta, fc, groups)

        def fit(labels: np.ndarray) -> LinearProbe:
            rows = np.flatnonzero(labels >= 0)
            return fit_probe(
                features, labels, rows, groups, binary=True, seed=self.seed, feature_kind=kind
            )

        self.pseudo_targets_ = self.bei_pseudo_filled_ = None
        y_final = y
        if settings["diagnosis_pseudo_labels"]:
            y_final = self._confident_pseudo_labels(
                y, groups, settings, lambda hidden, _rows: fit(hidden).predict_proba(features)
            )
        else:
            self.diagnosis_pseudo_ = self._diagnosis_record("off", y, groups)
        self.probe_ = fit(y_final)
        labelled = y >= 0
        proba = self.probe_.predict_proba(features[labelled])[:, 1].clip(1e-12, 1 - 1e-12)
        truth = y[labelled]
        loss = -np.mean(truth * np.log(proba) + (1 - truth) * np.log(1 - proba))
        self.history_ = [{"epoch": 0, "loss_total": float(loss), "penalty": self.probe_.penalty}]
        self.model_ = base.eval()
        self.layout_ = bei_layout
        self.meta_ = meta
        self.settings_ = settings
        self.fingerprint_ = data_fingerprint(pd.DataFrame({"y": y}), fc)
        self.data_ = self._training_data(fc, groups)
        self.classes_ = np.array([0, 1])
        log.info(
            "probe %s: logistic regression on %d %s features, C %s, %d labelled rows",
            self.label,
            features.shape[1],
            kind,
            self.probe_.penalty,
            int((y_final >= 0).sum()),
        )
        return self

    @staticmethod
    def _training_data(fc: np.ndarray, groups: np.ndarray | None) -> dict[str, Any] | None:
        """model.json's ``data`` record of the fit: every row trained the final model (the
        unlabelled ones through their BEI targets), so none is held out; None without
        ``groups`` (no subjects, no datasets to name)."""
        return None if groups is None else training_data(groups, fc)

    def _confident_pseudo_labels(
        self,
        y: np.ndarray,
        groups: np.ndarray | None,
        settings: dict[str, Any],
        first_model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """``y`` with confident predictions filled in for unlabeled subjects (part b).

        ``first_model(hidden, rows)`` fits on ``hidden`` (the labels with the inner validation
        rows ``rows`` hidden) and returns class probabilities ``[n, 2]`` of every row.
        Everything is per subject: a subject's probabilities are its rows' mean, the threshold
        is chosen on the inner validation subjects, the cap counts labelled subjects, and a
        subject none of whose rows is labelled gets one pseudo-label on all its rows (a partly
        labelled subject's unlabeled rows stay unlabeled). Sets ``diagnosis_pseudo_``
        (:func:`lcm.train.confident.diagnosis_record`), whatever the outcome.
        """
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        unlabeled = np.flatnonzero((y < 0) & ~np.isin(groups, groups[y >= 0]))
        if not len(unlabeled):  # no first model: there is nobody to pseudo-label
            self.diagnosis_pseudo_ = self._diagnosis_record("no_unlabeled", y, groups)
            return y
        plan = threshold_plan(y, groups, settings["inner_validation_fraction"], self.seed)
        if plan is None:
            log.info("diagnosis pseudo-labels: none, the labelled subjects lack a class")
            self.diagnosis_pseudo_ = self._diagnosis_record("one_class", y, groups)
            return y
        hidden = y.copy()
        hidden[plan.validation_rows] = -1  # the first model never sees the inner validation labels
        proba = first_model(hidden, plan.validation_rows)
        val_subjects = np.unique(groups[plan.validation_rows])
        if plan.source == "inner":
            _, val_proba, inverse = subject_means(proba, groups, plan.validation_rows)
            # A subject's label: its labelled rows' majority (they agree in practice).
            votes = np.bincount(inverse, weights=y[plan.validation_rows])
            val_y = (votes / np.bincount(inverse) > 0.5).astype(np.int64)
            thresholds = choose_thresholds(val_proba, val_y, settings["pseudo_label_accuracy"])
            cap = settings["pseudo_label_cap"]
        else:
            thresholds = {0: FALLBACK_THRESHOLD, 1: FALLBACK_THRESHOLD}
            # An unchecked threshold: its pseudo-labels keep the labelled class ratio.
            user_cap = settings["pseudo_label_cap"]
            cap = FALLBACK_CAP if user_cap is None else min(user_cap, FALLBACK_CAP)
        found = [t for t in thresholds.values() if t is not None]
        threshold = max(found) if found else None
        subjects, subject_proba, inverse = subject_means(proba, groups, unlabeled)
        labels = confident_labels(subject_proba, thresholds)
        n_labelled = {c: len(np.unique(groups[y == c])) for c in (0, 1)}
        if plan.source == "fixed":
            cap = ratio_cap(labels, n_labelled, cap)
        labels = cap_labels(labels, subject_proba, n_labelled, cap)
        filled = y.copy()
        filled[unlabeled] = labels[inverse]
        names = self._level_names()
        self.diagnosis_pseudo_ = diagnosis_record(
            "made",
            names,
            n_unlabeled=len(subjects),
            n_unlabeled_rows=len(unlabeled),
            threshold=threshold,
            thresholds=thresholds,
            threshold_source=plan.source,
            inner_validation_rows=plan.validation_rows.tolist(),
            inner_validation_subjects=len(val_subjects),
            pseudo_labelled_subjects=[int((labels == c).sum()) for c in (0, 1)],
            pseudo_labelled_rows=[int((filled[unlabeled] == c).sum()) for c in (0, 1)],
        )
        log.info(
            "diagnosis pseudo-labels: threshold %s (%s, %d inner validation subjects); %d of %d "
            "unlabeled subjects labelled (%d of %d rows); by class %s",
            threshold,
            plan.source,
            len(val_subjects),
            int((labels >= 0).sum()),
            len(subjects),
            int((filled[unlabeled] >= 0).sum()),
            len(unlabeled),
            {names[c]: int((labels == c).sum()) for c in (0, 1)},
        )
        if (labels >= 0).any() and len(np.unique(labels[labels >= 0])) == 1:
            log.warning(
                "diagnosis pseudo-labels of one class only: %d %r, 0 %r (per-class thresholds %s)",
                int((labels >= 0).sum()),
                names[int(labels[labels >= 0][0])],
                names[1 - int(labels[labels >= 0][0])],
                {names[c]: thresholds[c] for c in (0, 1)},
            )
        return filled

    def _coding_keys(self, meta: dict[str, Any]) -> str:
        """The catalogue keys that coded ``label`` for the datasets the checkpoint (``meta``)
        was pretrained on: its ``data`` names them; the catalogue of the ``fit`` data, when
        given and coding the label for some of them, keeps those and names its file."""
        datasets = list((meta.get("data") or {}).get("datasets") or [])
        if self.catalogue is not None:
            coded = self.catalogue.datasets
            coding = [d for d in datasets if self.label in getattr(coded.get(d), "columns", {})]
            datasets = coding or datasets
        where = f"the catalogue {self.catalogue.path}" if self.catalogue else "the catalogue"
        if not datasets:  # a checkpoint that does not record its data
            return f"the pretraining datasets' columns in {where}"
        return ", ".join(f"datasets.{d}.columns" for d in datasets) + f" in {where}"

    def _level_names(self) -> tuple[str, str]:
        levels = tuple(self.levels)
        return (str(levels[0]), str(levels[1])) if len(levels) == 2 else ("0", "1")

    def _diagnosis_record(
        self, status: str, y: np.ndarray, groups: np.ndarray | None
    ) -> dict[str, Any]:
        """The record of a fit that made no diagnosis pseudo-labels, and why (``status``)."""
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        unlabeled = (y < 0) & ~np.isin(groups, groups[y >= 0])
        if status != "off":
            log.info(
                "diagnosis pseudo-labels: none (%s); %d unlabeled subject(s)",
                status,
                len(np.unique(groups[unlabeled])),
            )
        return diagnosis_record(
            status,
            self._level_names(),
            n_unlabeled=len(np.unique(groups[unlabeled])),
            n_unlabeled_rows=int(unlabeled.sum()),
        )

    def _clinical(self, bei: Targets) -> list[str]:
        """The BEI targets of ``domain: clinical`` variables (none known without a catalogue)."""
        if self.catalogue is None:
            return []
        variables = self.catalogue.variables
        return [n for n in bei if n in variables and variables[n].domain == "clinical"]

    def _finetuned_proba(self, train: _Finetuning, fc: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, 2]`` of a model finetuned on ``y`` (the first model)."""
        first, _ = train(fc, y)
        logits = predict_outputs(first, fc, next(first.parameters()).device)
        return torch.softmax(logits[:, train.layout[self.label].slice].double(), dim=-1).numpy()

    n_task_queries = 2  # the two diagnosis logits

    def _check_fit_inputs(
        self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame | None
    ) -> np.ndarray:
        if len(tuple(self.levels)) != 2 or len(set(self.levels)) != 2:
            raise ConfigError(
                f"LCMClassifier levels: expected two distinct level names, got {self.levels!r}.",
                hint="Pass (negative, positive), e.g. ('control', 'autism').",
            )
        self._check_setup(fc, variables)
        y = np.asarray(y)
        if y.shape != (len(fc),) or not np.isin(y, (-1, 0, 1)).all():
            raise InputDataError(
                f"finetuning labels: expected {len(fc)} integers in {{-1, 0, 1}}, got shape "
                f"{y.shape} with values {np.unique(y)[:5].tolist()}.",
                hint="Encode the positive level as 1, the negative as 0, unlabeled as -1.",
            )
        if not (y >= 0).any():
            raise InputDataError(
                "finetuning labels: no labelled subject (all -1).",
                hint="At least one subject needs a diagnosis.",
            )
        return y.astype(np.int64)

    def _log_counts(self, y: np.ndarray, bei: Targets) -> None:
        known = {name: int(t.present.sum()) for name, t in bei.items()}
        log.info(
            "finetuning %s: %d labelled (%d positive), %d unlabeled; BEI targets per variable: %s",
            self.label,
            int((y >= 0).sum()),
            int((y == 1).sum()),
            int((y < 0).sum()),
            known,
        )

    # -- prediction -----------------------------------------------------------------------

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, 2]`` (columns: ``levels[0]``, ``levels[1]``).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices.

        Returns
        -------
        numpy.ndarray, shape (n, 2)
        """
        if getattr(self, "probe_", None) is not None:
            return self.probe_.predict_proba(self._probe_features(fc))
        logits = self._outputs(fc)[:, self.layout_[self.label].slice]
        return torch.softmax(logits.double(), dim=-1).numpy()

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predicted class ``[n]`` (1 = ``levels[1]``).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices.

        Returns
        -------
        numpy.ndarray of int, shape (n,)
        """
        return self.predict_proba(fc).argmax(axis=1)

    # -- persistence ----------------------------------------------------------------------

    def save(self, out_dir: str | Path, *, record: Recorder | None = None) -> Path:
        """Write the finetuned checkpoint (same format as pretraining, plus the label).

        Writes ``model.safetensors``, ``model.json`` and ``history.tsv`` in ``out_dir``, kept
        only together, with their provenance records when given a ``record``
        (:func:`lcm.io.output_set.written_together`: after a failed write, all three are the
        last run's, or none when there was no last run).
        ``model.json``'s ``diagnosis_pseudo_labels`` records the outcome of part b
        (:func:`lcm.train.confident.diagnosis_record`, less the inner validation rows): its
        ``status`` says whether pseudo-labelling ran (``made``) or why not (``off``,
        ``no_unlabeled``, ``one_class``); ``threshold`` (null: none reached the target accuracy,
        or not made; ``thresholds`` per level) and its ``threshold_source`` ("inner" validation
        split or "fixed"),
        ``inner_validation_subjects``, ``n_unlabeled`` subjects and ``n_unlabeled_rows``,
        ``n_pseudo_labelled`` subjects, and ``pseudo_labelled_subjects`` /
        ``pseudo_labelled_rows`` per level. ``bei_pseudo_filled`` counts the rows whose missing
        BEI variables the pretrained heads filled (part a; null when off). ``data`` records the
        runs and subjects ``fit`` was given (:func:`lcm.model.training_data.training_data`,
        none held out; absent when ``fit`` had no ``groups``), ``pretrained_data`` the ``data``
        of the checkpoint it started from (absent for ``init="scratch"``).

        Parameters
        ----------
        out_dir : path-like
            The checkpoint folder.
        record : callable, optional
            Writes the provenance records of the three files, given them, returning the
            records; called inside the files' set, so that the records are kept only with them
            (``lcm finetune``'s).

        Returns
        -------
        pathlib.Path
            The checkpoint folder as :func:`lcm.model.checkpoint.save_checkpoint` returns it.

        Raises
        ------
        InputDataError
            The classifier is not fitted.
        """
        if not hasattr(self, "model_"):
            raise InputDataError("LCMClassifier is not fitted.", hint="Call fit() before save().")
        keep = ("atlas", "n_rois", "roi_names", "catalogue", "standardisation", "model_settings")
        meta = {k: self.meta_[k] for k in keep if k in self.meta_}
        meta.setdefault("n_rois", self.model_.config.n_rois)
        meta.update(
            kind="finetuned",
            label={"name": self.label, "levels": list(self.levels), "positive": self.levels[1]},
            init=self.init,
            pretrained_from=str(self.checkpoint) if self.checkpoint else None,
            pretrained_fingerprint=self.meta_.get("data_fingerprint"),
            training=self.settings_,
            seed=self.seed,
            data_fingerprint=self.fingerprint_,
        )
        # What it was trained on, in the pretrained record's format (lcm.model.training_data):
        # its own runs, and those of the weights it started from, which lcm embed marks too
        # (the pretrained folder may be gone by then). A scratch model started from none.
        if getattr(self, "data_", None) is not None:
            meta["data"] = self.data_
        base_data = self.meta_.get("data")
        if self.init == "pretrained" and isinstance(base_data, dict):
            meta["pretrained_data"] = base_data
        pseudo = getattr(self, "diagnosis_pseudo_", None)
        meta["diagnosis_pseudo_labels"] = (
            None
            if pseudo is None
            else {k: v for k, v in pseudo.items() if k != "inner_validation_rows"}
        )
        meta["bei_pseudo_filled"] = getattr(self, "bei_pseudo_filled_", None)
        if self.probe_ is not None:  # the model is the pretrained one; the probe reads it
            meta["probe"] = self.probe_.to_dict()
        folder = Path(out_dir)
        files = [folder / name for name in CHECKPOINT_FILES]
        # Their records in the set too (as lcm pretrain's): a full disk or a kill between the
        # files and the records left this run's model beside the last run's records (or none).
        records = [provenance_path(f) for f in files] if record is not None else []
        # All three or none (as lcm pretrain's): a full disk at model.json or the history left
        # new weights beside the last run's model.json, refused later on its checksum.
        with written_together([*files, *records]) as written:
            # (Weights written, model.json not: written_together finds the weights replaced.)
            out = save_checkpoint(folder, self.model_.to("cpu"), self.layout_, meta)
            written += [out / WEIGHTS_NAME, out / META_NAME]
            write_tsv(out / HISTORY_NAME, history_frame(self.history_))
            written.append(out / HISTORY_NAME)
            if record is not None:
                written += record([out / name for name in CHECKPOINT_FILES])
        return out


class FinetuneStep:
    """One finetuning batch: ``step(index) -> (total, parts)`` for
    :func:`lcm.train.loop.train_epochs`.

    The total is the task's loss on the batch's labelled rows plus ``pseudo_weight`` times the
    mean of the BEI losses (pseudo-labels included) present in the batch; ``parts`` are each
    variable's loss and ``loss_bei``. Nothing waits for the device: the connectomes are there
    already, the targets stay on the host until the losses copy them without waiting.

    Parameters
    ----------
    model : LCM
        On the device, its queries already extended for the task.
    fc : torch.Tensor, shape (n, R, R)
        Every training connectome, on the model's device.
    targets : dict of Target
        Every training sample's targets, on the host: the BEI ones and the task's.
    layout : QueryLayout
    label : str
        The task's variable.
    pseudo_weight : float
        Weight of the BEI losses; 0 trains on the task alone.
    """

    def __init__(
        self,
        model: LCM,
        fc: torch.Tensor,
        targets: Targets,
        layout: QueryLayout,
        label: str,
        pseudo_weight: float,
    ) -> None:
        self.model, self.fc, self.targets, self.layout = model, fc, targets, layout
        self.label, self.pseudo_weight = label, pseudo_weight

    def __call__(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Losses of the samples ``index`` (host indices)."""
        dev, label = self.fc.device, self.label
        batch = {name: t.take(index) for name, t in self.targets.items()}
        with autocast(dev):
            outputs = self.model(self.fc[to_device(index, dev)])
            losses = variable_losses(outputs, batch, self.layout)
        dx = losses.pop(label, None)
        parts = {f"loss_{k}": v for k, v in losses.items()}
        terms = []
        if dx is not None:
            terms.append(dx)
            parts[f"loss_{label}"] = dx
        if losses and self.pseudo_weight > 0:
            bei_loss = torch.stack(list(losses.values())).mean()
            terms.append(self.pseudo_weight * bei_loss)
            parts["loss_bei"] = bei_loss
        total = torch.stack(terms).sum() if terms else torch.zeros((), device=dev)
        return total, parts


class _Finetuning:
    """One finetuning run from the base model: ``train(fc, y) -> (model, history)``.

    Holds what the runs of one ``fit`` share (the base weights, the BEI targets with their
    pseudo-labels, the layout, settings and seed), so that the inner model of the diagnosis
    pseudo-labels and the final model are trained the same way.
    """

    def __init__(
        self,
        base: LCM,
        init: str,
        bei: Targets,
        layout: QueryLayout,
        label: str,
        settings: dict[str, Any],
        seed: int,
        device: torch.device,
    ) -> None:
        self.base, self.init, self.bei, self.layout = base, init, bei, layout
        self.label, self.settings, self.seed, self.device = label, settings, seed, device

    def __call__(self, fc: np.ndarray, y: np.ndarray) -> tuple[LCM, list[dict[str, float]]]:
        dev, label = self.device, self.label
        generator = seed_everything(self.seed)
        model = LCM(self.base.config) if self.init == "scratch" else copy.deepcopy(self.base)
        n_new = self.layout.n_queries - model.config.n_queries
        if n_new > 0:  # append the task's queries (the diagnosis pair, or one regression query)
            model.add_queries(n_new, generator=generator)
        if self.settings.get("freeze_encoder") and self.init == "pretrained":
            freeze_encoder(model)
        model = model.to(dev)
        step = FinetuneStep(
            model,
            torch.as_tensor(fc, dtype=torch.float32, device=dev),
            self.targets(y),
            self.layout,
            label,
            float(self.settings["pseudo_weight"]),
        )
        s = self.settings
        history = train_epochs(
            [model],
            len(y),
            s["epochs"],
            s["batch_size"],
            s["lr"],
            WEIGHT_DECAY,
            generator,
            step,
            f"finetune {label}",
            lr_scales=layer_lr_scales(model, float(s["layer_decay"])),
        )
        return model.eval(), history

    def without(self, names: list[str], rows: np.ndarray) -> _Finetuning:
        """The same run with the BEI targets ``names`` unknown on ``rows``.

        Parameters
        ----------
        names : list of str
            BEI variables to hide.
        rows : numpy.ndarray
            Training row positions.

        Returns
        -------
        _Finetuning
        """
        bei = dict(self.bei)
        for name in names:
            target = bei[name]
            hide = torch.zeros_like(target.present)
            hide[torch.as_tensor(rows, dtype=torch.long)] = True
            values = target.values.clone()
            values[hide] = 0.0
            bei[name] = Target(values, target.present & ~hide)
        return _Finetuning(
            self.base,
            self.init,
            bei,
            self.layout,
            self.label,
            self.settings,
            self.seed,
            self.device,
        )

    def targets(self, y: np.ndarray) -> Targets:
        """Training targets: the BEI ones and the task's (only its labelled rows are present).

        ``y``: 0/1 with -1 unlabeled for a binary label; standardised floats with NaN
        unlabeled for a numeric one.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            The task's label per training row.

        Returns
        -------
        Targets
            The BEI targets, and the task's under its label's name.
        """
        if self.layout[self.label].is_numeric:
            present = np.isfinite(y)
            values = np.where(present, y, 0.0).astype(np.float32)
            task = Target(torch.from_numpy(values), torch.from_numpy(present))
        else:
            onehot = np.zeros((len(y), 2), dtype=np.float32)
            onehot[y >= 0, y[y >= 0]] = 1.0
            task = Target(torch.from_numpy(onehot), torch.from_numpy(y >= 0))
        return {**self.bei, self.label: task}


def freeze_encoder(model: LCM) -> None:
    """Fix the pretrained ROI tokenizer and encoder: only decoder, queries and head learn.

    The optimiser skips parameters without gradients (:func:`lcm.train.loop.make_optimizer`).

    Parameters
    ----------
    model : LCM
        Changed in place: the tokenizer's, encoder's, memory norm's and reconstruction head's
        parameters stop requiring gradients.
    """
    for module in (model.tokenizer, model.encoder, model.norm_memory, model.reconstruct_head):
        for p in module.parameters():
            p.requires_grad_(False)


def bei_targets(
    base: LCM,
    meta: dict[str, Any],
    bei_layout: QueryLayout,
    fc: np.ndarray,
    variables: pd.DataFrame | None,
    use_pseudo: bool,
    device: torch.device,
    drop: tuple[str, ...] = (),
    *,
    datasets: np.ndarray | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[Targets, Targets | None, dict[str, int] | None]:
    """BEI targets of the ``fit`` rows: their own variables, missing ones pseudo-filled (part a).

    Parameters
    ----------
    base : LCM
        The pretrained model (frozen here: it only predicts).
    meta : dict
        Checkpoint metadata (its ``standardisation``); empty for a scratch model.
    bei_layout : QueryLayout
        The pretrained query groups.
    fc : numpy.ndarray, shape (n, R, R)
        The ``fit`` connectomes only: pseudo-targets never come from test data.
    variables : pandas.DataFrame or None
        ``n`` rows of catalogue variables.
    use_pseudo : bool
        Fill missing BEI targets with the pretrained model's soft predictions
        (:func:`lcm.model.targets.targets_from_outputs`: a categorical or diagnostic variable's
        pseudo-label is spread over its own levels, never on ``n/a``); not for a checkpoint
        pretrained with ``bei_weight`` 0, whose BEI heads never learned.
    device : torch.device
    drop : tuple of str
        Groups left out of the BEI targets (a task label that is also a BEI variable).
    datasets : numpy.ndarray, optional
        Dataset of each row.
    catalogue : Catalogue, optional
        The catalogue the rows were loaded with. With ``datasets``, a variable a row's dataset
        does not record gets the ``n/a`` class as in pretraining
        (:func:`lcm.model.targets.encode_bei_targets`), and only values missing where the
        dataset records the variable are pseudo-filled. Without them every missing value is
        pseudo-filled.

    Returns
    -------
    (targets, pseudo_targets, filled)
        ``pseudo_targets`` is None when not used; ``filled`` maps each BEI variable kept to
        the rows whose missing value a pseudo-label filled (None when not used).
    """
    stats = meta.get("standardisation", {}) if meta else {}
    frame = variables if variables is not None else pd.DataFrame(index=range(len(fc)))
    bei = encode_bei_targets(frame, bei_layout, stats, datasets, catalogue)
    pseudo = filled = None
    if use_pseudo and bei_layout.groups and (meta.get("training") or {}).get("bei_weight") == 0:
        # Pretrained with the self-supervised loss alone: its BEI heads never learned (held-out
        # R^2 ~0), and their outputs filled every missing variable as if they had.
        log.warning(
            "pseudo_labels: the checkpoint was pretrained with bei_weight 0 (self-supervised "
            "only): its BEI heads are untrained, so no missing variable is pseudo-filled"
        )
        use_pseudo = False
    if use_pseudo and bei_layout.groups:
        pseudo = targets_from_outputs(predict_outputs(base.to(device), fc, device), bei_layout)
        filled = {
            name: int((~own.present & pseudo[name].present).sum())
            for name, own in bei.items()
            if name in pseudo and name not in drop
        }
        bei = fill_missing(bei, pseudo)
    return {k: v for k, v in bei.items() if k not in drop}, pseudo, filled
