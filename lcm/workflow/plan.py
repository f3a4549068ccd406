"""What the Snakemake workflow needs to know at parse time: datasets, subjects and runs.

Snakemake builds its DAG before any job runs, so per-run jobs need their run list up front.
Synthetic consortia report their planned runs without generating data; real datasets are listed
by the ingest stage's fast index (``lcm.bids.ingest.included_runs``), so the DAG holds the runs
the manifest includes, and those the BIDS validator excludes when ingest runs (their jobs record
why: the DAG is the same before and after ingest).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lcm.entries import entry_type, names
from lcm.exceptions import ConfigError, InputDataError
from lcm.io import paths
from lcm.reason_codes import (
    FMRIPREP_EXCLUDED,
    FMRIPREP_FAILED,
    NOT_IN_SPACE,
    OUTPUTS_AMBIGUOUS,
    OUTPUTS_MISSING,
    VALIDATOR,
)

# Why an fMRIPrep record excludes a run from what it finds of the derivatives (valid while they
# are unchanged; a change reruns the subject, :meth:`WorkflowPlan.subject_sources`). Any other
# code is ingest's, which the record copies (``excluded at ingest``).
DERIVATIVE_EXCLUSIONS = frozenset(
    {NOT_IN_SPACE, OUTPUTS_MISSING, OUTPUTS_AMBIGUOUS, FMRIPREP_FAILED, FMRIPREP_EXCLUDED}
)


class WorkflowPlan:
    """Datasets, subjects and runs of a validated configuration.

    Parameters
    ----------
    config : dict
        Output of :func:`lcm.config.validate_config`.
    check_files : bool, default True
        Read the atlas's files now (:func:`lcm.atlas.load.check_atlas_files`); False in a
        job's own process, which the main process checked for.
    source : str, default "config"
        Where the config comes from (its files), for messages.
    """

    def __init__(
        self, config: dict[str, Any], check_files: bool = True, source: str = "config"
    ) -> None:
        self.config = config
        self.source = source
        self.datasets: dict[str, dict] = config["datasets"]
        synth = config["synth"]
        self.consortia: dict[str, dict] = synth["consortia"] if synth["enabled"] else {}
        self._runs: dict[str, list[dict]] = {}
        self._bold: dict[str, dict[str, str]] = {}  # dataset -> run_key -> source BOLD
        self._sources: dict[str, dict[str, str]] = {}  # dataset -> subject -> files' digest
        self._changed: dict[str, set[str]] = {}  # dataset -> subjects changed since ingest
        self._run_keys: dict[str, dict[str, set[str]]] = {}  # dataset -> subject -> run keys
        self._unrecorded: dict[tuple[str, str], bool] = {}  # planned runs its record lacks
        # (dataset, subject) -> its fMRIPrep record's run keys: listed with derivatives, and
        # excluded by the BIDS validator (None: no readable record)
        self._recorded: dict[tuple[str, str], tuple[set[str], set[str]] | None] = {}
        # dataset -> subject -> the manifest's run keys: included, excluded by the validator
        self._manifest_runs: dict[str, dict[str, tuple[set[str], set[str]]]] = {}
        self._validation: dict[str, dict | None] = {}  # dataset -> validation_inputs, now
        self._validation_stale: dict[str, bool] = {}  # dataset -> differs from ingest's
        self._synth_changed: dict[tuple[str, str], bool] = {}  # synthetic subjects edited
        # (dataset, subject) -> digest of its existing derivatives, their newest mtime (ns)
        self._derivatives: dict[tuple[str, str], tuple[str, int]] = {}
        from lcm.atlas.load import check_atlas_files, check_atlas_space

        check_atlas_space(config, self.voxel_datasets(), source)
        # Its files read now (a missing file, a table that does not match its image), or a
        # registry atlas's name checked, whatever the datasets' level: said before fMRIPrep
        # runs (and before "Nothing to be done" keeps old outputs).
        if check_files:
            check_atlas_files(config, source)

    def check_inputs(self, variables_given: bool = True) -> None:
        """Refuse a config whose real datasets' files or catalogue are not there.

        Checked by the workflow's main process before any job: a mistyped
        ``datasets.<name>.path`` planned no run of a raw BIDS dataset, silently, and failed
        its ingest job only; a catalogue (``variables``) not found skipped the check of the
        tasks' labels and stopped the DAG on a missing input; one without a dataset's coding
        stopped its store job. Synthetic datasets' files are
        the workflow's own outputs, not checked; nor is a ``derivatives`` folder that a
        container run of fMRIPrep writes (entry ``bids``, runner docker or apptainer).

        Parameters
        ----------
        variables_given : bool, default True
            Whether the config file sets ``variables``; when not, a catalogue not found is
            called the default, not a value the user wrote.

        Raises
        ------
        ConfigError
            Naming the config file, the key, its value and the fix.
        """
        variables = self.config["variables"]
        if not variables_given and not os.path.isfile(variables):
            raise ConfigError(
                f"{self.source}: variables is not set, and its default {variables!r} is not a "
                f"file{_relative_note(variables)}.",
                hint="Add `variables: <your variable catalogue>` to the config (a YAML file "
                "naming each phenotype column the tasks and pretraining read: config/README.md; "
                "the demo's is config/variables.yaml of the LCM repository), as an absolute "
                "path or one relative to the folder Snakemake runs in (--directory).",
            )
        if not os.path.isfile(variables):
            raise ConfigError(
                f"{self.source}: variables is {variables!r}, which is not a file"
                f"{_relative_note(variables)}.",
                hint="Set variables to the variable catalogue (a YAML file, e.g. the demo's "
                "config/variables.yaml), as an absolute path or one relative to the folder "
                "Snakemake runs in (--directory).",
            )
        self._check_codings(variables)
        runner = self.config["fmriprep"]["runner"]
        self._check_container_inputs()
        for name, ds in sorted(self.datasets.items()):
            if name in self.consortia:
                continue
            kind = entry_type(ds["entry"])
            keys: dict[str, str] = {}
            if not (kind.derivatives_root and ds.get("derivatives")):  # else not read
                keys["path"] = f"the folder (or listing) of its {ds['entry']!r} data"
            keys["phenotype"] = "its phenotype table (TSV or CSV)"
            if ds.get("derivatives") and not (kind.raw and runner != "existing"):
                keys["derivatives"] = "the folder of its fMRIPrep outputs"
            for key, what in keys.items():
                value = ds[key]
                if not os.path.exists(value):
                    raise ConfigError(
                        f"{self.source}: datasets.{name}.{key} is {value!r}, which does not "
                        f"exist{_relative_note(value)}.",
                        hint=f"Set datasets.{name}.{key} to {what}, or remove datasets.{name} "
                        "if it is not to be used.",
                    )
            root = ds["path"] if kind.raw else ""
            if root and os.path.isdir(root):
                if not os.path.isfile(os.path.join(root, "dataset_description.json")):
                    # Said by the ingest job otherwise, after the plan (and a dry run) passed.
                    raise ConfigError(
                        f"{self.source}: datasets.{name}.path is {root!r}, which has no "
                        f"dataset_description.json{_relative_note(root)}: not the root of a "
                        "BIDS dataset.",
                        hint=f"Point datasets.{name}.path at the dataset's top folder (the one "
                        "holding sub-* folders), or add a dataset_description.json with at least "
                        '{"Name": ..., "BIDSVersion": "1.10.0"}.',
                    )

    def _check_codings(self, variables: str) -> None:
        """Every dataset has a coding in the catalogue ``variables``: one without passed a dry
        run and stopped its store job, after every ingest, fMRIPrep and connectome job had run.
        A catalogue that cannot be read is left to the jobs that read it, which name it."""
        from lcm.catalogue import load_catalogue

        try:
            coded = load_catalogue(variables).datasets
        except ConfigError:
            return
        uncoded = sorted(str(n) for n in self.datasets if str(n) not in coded)
        if uncoded:
            raise ConfigError(
                f"{self.source}: the variable catalogue {variables} (variables) codes no "
                f"phenotype columns for dataset(s) {uncoded} (it codes {sorted(coded)}): their "
                "store jobs would read none of their variables.",
                hint=f"Add datasets.{uncoded[0]}: {{id_column: <its participant ID column>, "
                f"columns: {{<variable>: {{column: <its phenotype column>}}}}}} to {variables} "
                "(as config/variables.yaml of the LCM repository does for the demo's datasets), "
                "or remove the dataset from the config.",
            )

    def _check_container_inputs(self) -> None:
        """A container run's licence file and TemplateFlow folder, before any job.

        Each subject's fMRIPrep job found them missing, after ingest, on SLURM once per
        attempt: the licence named only by the job's error, a missing ``TEMPLATEFLOW_HOME``
        by apptainer's refusal to bind it.
        """
        fmriprep = self.config["fmriprep"]
        runner = fmriprep["runner"]
        raw = any(entry_type(ds["entry"]).raw for ds in self.datasets.values())
        if runner == "existing" or not raw:
            return
        licence = fmriprep.get("fs_license")
        if licence and not os.path.isfile(licence):
            raise ConfigError(
                f"{self.source}: fmriprep.fs_license is {licence!r}, which is not a file"
                f"{_relative_note(licence)}.",
                hint="Set fmriprep.fs_license to your FreeSurfer license.txt (free from "
                "https://surfer.nmr.mgh.harvard.edu/registration.html), as an absolute path or "
                "one relative to the folder Snakemake runs in (--directory).",
            )
        if runner == "apptainer":
            from lcm.preprocess.container import templateflow_home

            templateflow_home(os.environ.get("TEMPLATEFLOW_HOME"))

    # -- datasets ---------------------------------------------------------------------------
    def derivatives_dir(self, dataset: str, results: str) -> str | None:
        """The fMRIPrep derivatives a voxel-level dataset's jobs read (``None`` if none).

        The one answer for the fMRIPrep jobs' ``--derivatives`` and the rerun digest of
        :meth:`subject_sources`: configured for ``runner: existing``, written by the stage
        under ``results`` for a container run unless configured, and for a dataset entering
        as derivatives (``entry: fmriprep``) its ``derivatives`` if set, else its ``path``,
        the folder ingest indexed (:func:`lcm.bids.ingest.index_root`).

        Parameters
        ----------
        dataset : str
            A dataset of the config.
        results : str
            The workflow's results folder, under which a container run writes its derivatives.

        Returns
        -------
        str or None
            The derivatives folder; None for a parcellated dataset, and for ``runner: existing``
            without ``derivatives`` configured.
        """
        ds = self.datasets[dataset]
        kind = entry_type(ds["entry"])
        if not kind.voxel:
            return None
        if not kind.raw:
            return ds.get("derivatives") or ds["path"]
        if self.config["fmriprep"]["runner"] == "existing":
            return ds.get("derivatives")
        return ds.get("derivatives") or paths.fmriprep_derivatives(results, dataset)

    def voxel_datasets(self) -> list[str]:
        """Datasets entering as images (raw BIDS or fMRIPrep derivatives): one job per run."""
        voxel = names(voxel=True)
        return sorted(n for n, d in self.datasets.items() if d["entry"] in voxel)

    def parcellated_datasets(self) -> list[str]:
        """Datasets entering parcellated (ROI time series, connectomes): one job per dataset."""
        parcellated = names(voxel=False)
        return sorted(n for n, d in self.datasets.items() if d["entry"] in parcellated)

    def by_role(self, role: str) -> list[str]:
        """Datasets with ``role`` (pretrain or downstream).

        Parameters
        ----------
        role : str
            ``pretrain`` or ``downstream``, as a dataset's ``role`` in the config.

        Returns
        -------
        list of str
            The dataset names, sorted.
        """
        return sorted(n for n, d in self.datasets.items() if d["role"] == role)

    def synth_consortia(self, tier: str) -> list[str]:
        """Synthetic consortia of a tier (roi or voxel).

        Parameters
        ----------
        tier : str
            ``roi`` or ``voxel``, as a consortium's ``tier`` in the config.

        Returns
        -------
        list of str
            The consortium names, sorted.
        """
        return sorted(n for n, c in self.consortia.items() if c["tier"] == tier)

    # -- runs -------------------------------------------------------------------------------
    def runs(self, dataset: str) -> list[dict[str, str | None]]:
        """BOLD runs of a voxel-level dataset: dicts with ``sub, ses, task, run``.

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium; a real one's runs come from ingest's index (listed
            once, then cached).

        Returns
        -------
        list of dict
            One per run: ``sub``, ``ses``, ``task``, ``run`` (None where the run has no such
            entity).
        """
        if dataset not in self._runs:
            self._runs[dataset] = self._list_runs(dataset)
        return self._runs[dataset]

    def subjects(self, dataset: str) -> list[str]:
        """Subject labels of a voxel-level dataset, sorted.

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium.

        Returns
        -------
        list of str
            The labels, without ``sub-``.
        """
        return sorted({str(r["sub"]) for r in self.runs(dataset)})

    def subject_runs(self, dataset: str, subject: str) -> list[dict[str, str | None]]:
        """Runs of one subject.

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium.
        subject : str
            The subject's label, without ``sub-``.

        Returns
        -------
        list of dict
            Its runs, as :meth:`runs` gives them.
        """
        return [r for r in self.runs(dataset) if r["sub"] == subject]

    def bold_path(self, dataset: str, run_key: str) -> str | None:
        """Source BOLD file of a real dataset's run (from the ingest index); None if unknown.

        Synthetic runs have none until the synth stage writes them.

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium.
        run_key : str
            The run, as its entities joined (``sub-01_task-rest_run-1``).

        Returns
        -------
        str or None
            The BOLD file's path, as indexed.
        """
        self.runs(dataset)
        return self._bold.get(dataset, {}).get(run_key)

    def subject_sources(self, dataset: str, subject: str) -> str:
        """Digest of a real subject's indexed files, "" if synthetic: BOLD, sidecars and
        folders, and in a raw dataset every other file of its tree (``anat/``, ``fmap/``,
        ``*_scans.tsv`` ...; :func:`lcm.bids.index_cache.unit_digests`).

        An fMRIPrep job's param: a BOLD file or sidecar replaced or edited in place (or an
        anatomical image, a field map ...) reruns that subject (and, through its record, its
        connectomes), not the cohort; with ``fmriprep.runner: existing``, and for a dataset
        entering as fMRIPrep derivatives (``entry: fmriprep``), its derivatives count too (BOLD,
        mask, sidecars, confounds by size and modification time). Snakemake cannot see it
        otherwise: the job's inputs are the manifest, read as ancient.

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium.
        subject : str
            The subject's label, without ``sub-``.

        Returns
        -------
        str
            The digest (sha256 hex), or "".
        """
        if dataset in self.consortia:
            return ""  # its files are outputs of the synth rule, which Snakemake follows
        self.runs(dataset)
        digest = self._sources.get(dataset, {}).get(subject, "")
        kind = entry_type(self.datasets[dataset]["entry"])
        if kind.raw and self.config["fmriprep"]["runner"] != "existing":
            return digest  # a container run's derivatives are its own outputs
        # The index digest covers the preprocessed BOLD and its sidecars only (entry fmriprep):
        # the mask and confounds the job also reads are listed here.
        deriv_root = self.derivatives_dir(dataset, "")
        if deriv_root:
            # The subject's existing derivatives are what its job reads (listed once: Snakemake
            # asks for a job's params several times).
            key = (dataset, subject)
            if key not in self._derivatives:
                from lcm.preprocess.derivatives import subject_derivative_stats

                stats = subject_derivative_stats(deriv_root, subject)
                text = json.dumps([digest, stats]).encode()
                newest = max((int(line.rsplit("\t", 1)[1]) for line in stats), default=0)
                self._derivatives[key] = (hashlib.sha256(text).hexdigest(), newest)
            digest = self._derivatives[key][0]
        return digest

    def subject_changed(self, dataset: str, subject: str) -> bool:
        """Whether a subject's files changed since its fMRIPrep job last ran.

        Snakemake does not check a job downstream of one that reruns (ingest, when any file
        changed) if all its inputs from that job are ancient, its params nor its own inputs'
        times: such a subject's fMRIPrep job takes the manifest as a plain input instead, so it
        reruns with ingest. A real subject: its indexed files changed since the last ingest
        wrote its cache (False when unknown, without an ingest cache: its ``sources`` param then
        reruns it once ingest is done, in the next invocation), a run planned for it that its
        fMRIPrep record does not list (the selection or validation changed), a BIDS validator
        verdict its record holds that ``.bidsignore``, the validator's version or the manifest
        contradicts (:meth:`_verdicts_changed`), or the existing derivatives its job reads
        (:meth:`subject_sources`) hold a file or folder newer than its fMRIPrep record (an edit
        in place, a file added or removed). A synthetic one: a file of its (or of its cohort,
        which each subject's job reads) is newer than its fMRIPrep record, as when edited in
        place (:meth:`synth_subject_files`; the synth jobs' own rewrites rerun
        it through those inputs anyway).

        Parameters
        ----------
        dataset : str
            A voxel-level dataset or consortium.
        subject : str
            The subject's label, without ``sub-``.

        Returns
        -------
        bool
            True when they changed: the subject's fMRIPrep job then takes the manifest as a plain
        input, and reruns with ingest.
        """
        if dataset in self.consortia:
            return self._synth_subject_changed(dataset, subject)
        self.runs(dataset)
        if subject in self._changed.get(dataset, set()):
            return True
        if self._runs_unrecorded(dataset, subject):
            return True
        if self._verdicts_changed(dataset, subject):
            return True
        # Existing derivatives its job reads (runner existing, entry fmriprep): a file of them
        # newer than the record, as when edited in place, or a folder (a file added or removed).
        self.subject_sources(dataset, subject)
        newest = self._derivatives.get((dataset, subject), ("", 0))[1]
        if not newest:
            return False  # none: a container run's own outputs, or none there
        made = self._record_time(dataset, subject)
        return made is not None and newest > made

    def _runs_unrecorded(self, dataset: str, subject: str) -> bool:
        """Whether a planned run of a real subject is missing from its fMRIPrep record, or is
        excluded there for a reason the config has lifted since.

        Its files unchanged, a subject's runs change with the config: ``ingest.select`` an
        exclusion dropped, ``ingest.validate: false`` taking back runs the validator faulted
        (which the record lists as excluded at ingest). Its job, reading the manifest as
        ancient, would not rerun, and the new run's connectome job would find no entry in the
        record, or the old exclusion. A run the record lists with derivatives, or excludes for
        its derivatives (:data:`DERIVATIVE_EXCLUSIONS`), is as planned; one excluded at ingest
        is so only while the validator runs and the code is the validator's: the plan lists
        the runs ingest includes, the validator's verdicts aside. A run the record lists that
        is no longer planned (excluded since) is left there, unread: that reruns no subject.
        One small JSON read per subject with a record, asked once per job.
        """
        key = (dataset, subject)
        if key not in self._unrecorded:
            record = paths.fmriprep_record(self.config["results_dir"], dataset, subject)
            planned = self._run_keys.get(dataset, {}).get(subject, set())
            validated = self._validated(dataset)
            try:
                data = json.loads(Path(record).read_text())
                known = {str(run["run_key"]) for run in data.get("runs", [])}
                listed, by_validator_keys = set(known), set()
                for run in data.get("excluded", []):
                    code = str(run.get("reason_code") or FMRIPREP_EXCLUDED)
                    by_validator = code.split(":", 1)[0] == VALIDATOR
                    if by_validator:
                        by_validator_keys.add(str(run["run_key"]))
                    if code in DERIVATIVE_EXCLUSIONS or (by_validator and validated):
                        known.add(str(run["run_key"]))
                self._recorded[key] = (listed, by_validator_keys)
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                # Not made yet (its job runs anyway), or unreadable (an empty file of
                # `--touch`): left to the connectome jobs, which name it.
                known = planned
                self._recorded[key] = None
            self._unrecorded[key] = not planned <= known
        return self._unrecorded[key]

    def _validated(self, dataset: str) -> bool:
        """Whether ingest runs the BIDS validator on ``dataset`` (raw BIDS, ingest.validate)."""
        return (
            bool(self.config["ingest"]["validate"])
            and entry_type(self.datasets[dataset]["entry"]).raw
            and dataset not in self.consortia
        )

    def validation_inputs(self, dataset: str) -> dict | None:
        """``.bidsignore`` and validator version of a validated raw dataset, else None
        (:func:`lcm.bids.validator.validation_inputs`; read once).

        Parameters
        ----------
        dataset : str
            A dataset or consortium of the config.

        Returns
        -------
        dict or None
            ``{"validator": version, "bidsignore": sha256 or None}``; None for a dataset ingest does
            not validate (``ingest.validate`` off, not raw BIDS, synthetic).
        """
        if dataset not in self._validation:
            from lcm.bids.validator import validation_inputs

            validated = self._validated(dataset)
            root = self.datasets[dataset]["path"]
            self._validation[dataset] = validation_inputs(root) if validated else None
        return self._validation[dataset]

    def _verdicts_changed(self, dataset: str, subject: str) -> bool:
        """Whether the BIDS validator's verdict on a subject's runs differs from its record.

        A subject's validator error fixed outside its folder (the ``.bidsignore`` pattern the
        validator's own message recommends, an upgraded validator) changes no file of it:
        its fMRIPrep job, reading the manifest as ancient, kept its old record, "excluded at
        ingest", for good (and after a forced ingest the manifest said included while the
        record and the QC table said excluded). Two checks, for a validated raw dataset with a
        record: (1) ``.bidsignore`` differs from what the last ingest recorded (its summary's
        ``validator.inputs``) and the record lists a run the
        validator excluded: ingest reruns for them (:meth:`listing_hash`), and this subject
        with it, in the same invocation; (2) the manifest includes a run the record lists as
        excluded by the validator, or excludes by the validator a run the record lists with
        derivatives (a verdict that changed the other way, or an ingest forced): the next
        invocation. One read of the summary and three columns of the manifest per dataset.
        """
        recorded = self._recorded.get((dataset, subject))
        if recorded is None or not self._validated(dataset):
            return False
        listed, by_validator = recorded
        if by_validator and self._validation_changed(dataset):
            return True
        included, excluded = self._manifest_verdicts(dataset).get(subject, (set(), set()))
        return bool(by_validator & included or listed & excluded)

    def _validation_changed(self, dataset: str) -> bool:
        if dataset not in self._validation_stale:
            manifest = paths.ingest_manifest(self.config["results_dir"], dataset)
            try:
                summary = json.loads(Path(paths.ingest_summary(manifest, ".json")).read_text())
                recorded = summary["validator"].get("inputs")
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                recorded = None  # no ingest yet: its jobs run anyway
            # .bidsignore only: ingest may run in its own conda env (--software-deployment-
            # method conda), whose validator this process cannot see (its version here is
            # another's, or ""), and a difference there would rerun the subject at every
            # invocation. An upgrade's changed verdicts reach the manifest: check (2).
            now = (self.validation_inputs(dataset) or {}).get("bidsignore")
            stale = not isinstance(recorded, dict) or recorded.get("bidsignore") != now
            self._validation_stale[dataset] = stale and os.path.exists(manifest)
        return self._validation_stale[dataset]

    def _manifest_verdicts(self, dataset: str) -> dict[str, tuple[set[str], set[str]]]:
        """subject -> (run keys the manifest includes, run keys the validator excludes)."""
        if dataset not in self._manifest_runs:
            from lcm.bids.manifest import read_manifest

            manifest = paths.ingest_manifest(self.config["results_dir"], dataset)
            verdicts: dict[str, tuple[set[str], set[str]]] = {}
            columns = ["subject", "run_key", "included", "reason_code"]
            try:
                rows = read_manifest(manifest, columns).itertuples(index=False, name=None)
            except InputDataError:
                rows = iter(())  # not made yet, or unreadable: ingest's job says so
            for sub, run_key, included, code in rows:
                keys = verdicts.setdefault(str(sub), (set(), set()))
                if included:
                    keys[0].add(str(run_key))
                elif str(code or "").split(":", 1)[0] == VALIDATOR:
                    keys[1].add(str(run_key))
            self._manifest_runs[dataset] = verdicts
        return self._manifest_runs[dataset]

    def _record_time(self, dataset: str, subject: str) -> int | None:
        """Modification time of a subject's fMRIPrep record; None when not made yet."""
        record = paths.fmriprep_record(self.config["results_dir"], dataset, subject)
        try:
            return os.stat(record).st_mtime_ns
        except OSError:
            return None

    def _synth_subject_changed(self, dataset: str, subject: str) -> bool:
        key = (dataset, subject)
        if key not in self._synth_changed:  # asked once per job, answered once
            made = self._record_time(dataset, subject)  # not made yet: the job runs anyway
            newer = False
            for file in self.synth_subject_files(dataset, subject) if made else ():
                try:
                    newer = os.stat(file).st_mtime_ns > made
                except OSError:
                    continue  # not written yet: its synth job runs, and this job after it
                if newer:
                    break
            self._synth_changed[key] = newer
        return self._synth_changed[key]

    def listing_hash(self, dataset: str) -> str:
        """sha256 of what a real dataset holds, "" if synthetic.

        Voxel-level datasets: their runs and each subject's files (a run added or removed,
        a file or sidecar edited: :meth:`subject_sources`), and for a validated raw dataset
        its ``.bidsignore`` and the validator's version (:meth:`validation_inputs`).
        Parcellated ones (ROI time series, connectomes: one job reads every file): each file's
        name, size and modification time, so that a file added, replaced or edited reruns the
        dataset. A rule param: Snakemake cannot otherwise see changes to data that no rule produces.

        Parameters
        ----------
        dataset : str
            A dataset or consortium of the config.

        Returns
        -------
        str
            The digest (sha256 hex), or "".
        """
        if dataset in self.consortia:
            return ""
        ds = self.datasets[dataset]
        from lcm.bids.file_entries import file_stat, listing_stats, uses_file_index

        if entry_type(ds["entry"]).listing == "runs":
            listing: list = [self.runs(dataset), self._sources.get(dataset, {})]
            if self.validation_inputs(dataset) is not None:
                # .bidsignore and the validator's version decide the validator's verdicts.
                listing.append(self.validation_inputs(dataset))
        elif uses_file_index(ds["entry"], ds["path"]):
            listing = listing_stats(ds["path"])
        else:  # a derivative tree (XCP-D): its files, by name, size and modification time
            root = Path(ds["path"])
            stats = (file_stat(Path(d, f), root) for d, _, files in os.walk(root) for f in files)
            listing = sorted(filter(None, stats))
        return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()

    def synth_files(self, dataset: str) -> list[str]:
        """Every file the synth stage writes for ``dataset`` (empty when it is not synthetic).

        Parameters
        ----------
        dataset : str
            A dataset or consortium of the config.

        Returns
        -------
        list of str
            The files' paths, under ``synth.out_dir``: the cohort's, and for a voxel-tier
            consortium each subject's; a roi-tier cohort's run files are stood for by its summary
            files.
        """
        if dataset not in self.consortia:
            return []
        from lcm.synth import cohort_outputs, subject_outputs

        cons = self.consortia[dataset]
        out_dir = self.config["synth"]["out_dir"]
        files = list(cohort_outputs(dataset, cons, out_dir, atlas=self.config["atlas"]["name"]))
        if cons["tier"] == "roi":
            # The cohort job's run files are not declared one by one; its summary files stand
            # for them (the job writes all or, atomically, nothing new).
            files = [f for f in files if "/sub-" not in str(f)]
        else:
            space = self.config["fmriprep"]["output_space"]
            for sub in self.subjects(dataset):
                files += subject_outputs(dataset, cons, out_dir, sub, output_space=space)
        return [str(f) for f in files]

    def synth_subject_files(self, dataset: str, subject: str) -> list[str]:
        """Cohort files plus one subject's files of a voxel-tier consortium (empty if real).

        Parameters
        ----------
        dataset : str
            A dataset or consortium of the config.
        subject : str
            The subject's label, without ``sub-``.

        Returns
        -------
        list of str
            The files' paths, under ``synth.out_dir``.
        """
        if dataset not in self.consortia:
            return []
        from lcm.synth import cohort_outputs, subject_outputs

        cons = self.consortia[dataset]
        space = self.config["fmriprep"]["output_space"]
        out_dir = self.config["synth"]["out_dir"]
        files = [*cohort_outputs(dataset, cons, out_dir, atlas=self.config["atlas"]["name"])]
        files += subject_outputs(dataset, cons, out_dir, subject, output_space=space)
        return [str(f) for f in files]

    def _list_runs(self, dataset: str) -> list[dict[str, str | None]]:
        ds = self.datasets[dataset]
        if dataset in self.consortia:
            from lcm.synth import planned_runs

            return [
                dict(r) for r in planned_runs(dataset, self.consortia[dataset], self.config["seed"])
            ]
        # The ingest stage's own index (and its cache, read only): the DAG and the manifest
        # list the same included runs.
        from lcm.bids.index_cache import cache_dir_for
        from lcm.bids.ingest import included_runs
        from lcm.bids.selection import Selection
        from lcm.io.paths import ingest_manifest

        ingest = self.config.get("ingest", {})
        selection = ingest.get("select", {}).get(dataset)
        manifest = ingest_manifest(self.config["results_dir"], dataset)
        runs = included_runs(
            dataset,
            ds["entry"],
            ds["path"],
            task=ds.get("task", "rest"),
            space=self.config["fmriprep"]["output_space"],
            selection=Selection.from_config(selection, source=f"ingest.select.{dataset}"),
            cache_dir=cache_dir_for(manifest) if ingest.get("cache", True) else None,
            with_path=True,
            with_sources=True,
        )
        # Paths and digests stay out of the run dicts: those name outputs.
        self._sources[dataset] = {str(r["sub"]): str(r.pop("sources")) for r in runs}
        self._changed[dataset] = {str(r["sub"]) for r in runs if r.pop("changed")}
        keys = self._run_keys[dataset] = {}
        for r in runs:
            keys.setdefault(str(r["sub"]), set()).add(str(r["run_key"]))
        self._bold[dataset] = {str(r.pop("run_key")): str(r.pop("path")) for r in runs}
        return runs


def _relative_note(path: str) -> str:
    """`` (relative to <cwd>)`` for a relative path, which Snakemake reads from its folder."""
    return "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
