"""``lcm store``: add one dataset to the Parquet feature store."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging

import pandas as pd

from lcm.catalogue import load_catalogue
from lcm.commands._atlas import add_atlas_arguments
from lcm.commands._path_text import path_text
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path, missingness_path, variables_path
from lcm.io.provenance import check_recordable, record_outputs, sha256_file, write_sidecar
from lcm.io.qc_table import RELMAT, SUBJECT, read_qc_table
from lcm.store.commit import commit_dataset
from lcm.store.phenotype import (
    log_rows_without_runs,
    match_scanned_subjects,
    missingness,
    phenotype_units,
    read_phenotype,
    sidecar_path,
    warn_uninformative,
)
from lcm.store.qc_digest import qc_rows_sha256
from lcm.store.writer import (
    dataset_rows,
    stored_rows,
    variables_id,
    write_connectomes,
    write_missingness,
    write_variables,
)

log = logging.getLogger(__name__)

EXAMPLE = """example:
  lcm store --dataset abidelike --qc-table results/connectome/abidelike/seg-aal116_qc.tsv \\
      --phenotype results/synth/abidelike/phenotype.tsv --catalogue config/variables.yaml \\
      --atlas aal116 --store-dir results/store
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``store`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "store",
        help="Write one dataset's connectomes and variables to the Parquet feature store.",
        description="Read the connectome stage's QC table (included runs and their relmat files; "
        "a run with windowed matrices becomes one row per window) and the dataset's phenotype "
        "file, map the phenotype through the variable catalogue, "
        "and write the dataset's partitions of the store: staged, then made visible together "
        "(a killed run leaves the old partitions or completes on the next read or run). One "
        "writer per dataset at a time; other datasets may be written in parallel.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--qc-table", required=True, type=path_text, help="Connectome-stage QC table (TSV)."
    )
    p.add_argument(
        "--phenotype", required=True, type=path_text, help="Phenotype table (TSV or CSV)."
    )
    p.add_argument("--catalogue", required=True, type=path_text, help="Variable catalogue YAML.")
    add_atlas_arguments(p)
    p.add_argument("--store-dir", required=True, type=path_text, help="Root of the feature store.")
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm store``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    catalogue = load_catalogue(args.catalogue)
    # The table's contract (lcm.io.qc_table.QC_REQUIRED, as `lcm report` reads it) and the
    # matrices this stage stores.
    # Its rows of --dataset: a table of another dataset is refused, one of several is read
    # for this one's runs alone (its other subjects are not this dataset's scans).
    qc = dataset_rows(
        read_qc_table(args.qc_table, required=(RELMAT,)),
        args.dataset,
        args.qc_table,
        args.atlas,
        rule=bool(getattr(args, "rule", None)),
    )
    # A dataset without a run to store stops here, naming the QC table and the runs' reasons,
    # before its phenotype is read.
    runs = stored_rows(qc, args.dataset, source=args.qc_table)
    scanned = set(qc[SUBJECT])
    # A bad phenotype value stops the store only in the row of a participant whose connectomes
    # this run stores (an included run); other rows' bad values read as missing, logged.
    stored = set(runs[SUBJECT])
    # A workflow rule (lcm --rule) passes its config's datasets.<name>.phenotype: named so.
    setting = None if getattr(args, "rule", None) else "--phenotype"
    phenotype = read_phenotype(
        args.phenotype, args.dataset, catalogue, scanned=stored, setting=setting
    )
    phenotype, renamed = match_scanned_subjects(phenotype, scanned)
    if renamed:
        first = next(iter(renamed.items()))
        log.info(
            "%s: %d phenotype subject(s) matched to their files by number, leading zeros aside "
            "(%s in %s is %s in the file names)",
            args.dataset,
            len(renamed),
            first[0],
            args.phenotype,
            first[1],
        )
    # Rows of subjects never scanned, or whose every run was excluded, join no run: said,
    # counted and named (with the runs' reasons), whatever else.
    log_rows_without_runs(phenotype, qc, args.phenotype, args.dataset)
    no_pheno = sorted(scanned - set(phenotype["subject"]))
    if len(phenotype) and not stored & set(phenotype["subject"]):
        # Stored anyway, every run without variables, and lcm evaluate later said "one class
        # only (subjects {})": none of the file's rows is a stored subject.
        coding = catalogue.coding(args.dataset)
        raise InputDataError(
            f"{args.dataset}: none of the {len(stored)} stored subject(s) is in {args.phenotype} "
            f"(its {coding.id_column!r} column holds {sorted(set(phenotype['subject']))[:5]}, "
            f"the scans' subjects are {sorted(stored)[:5]}).",
            hint=f"Fix the subject IDs of {args.phenotype}, or the catalogue's id_column for "
            f"{args.dataset} if it names the wrong column.",
        )
    if no_pheno:
        unscanned = sorted(set(phenotype["subject"]) - scanned)
        log.warning(
            "%s: %d scanned subject(s) absent from %s (their variables are missing): %s%s",
            args.dataset,
            len(no_pheno),
            args.phenotype,
            no_pheno[:10],
            f"; its labels without files: {unscanned[:5]} (if these are the same people, the "
            f"catalogue's id_column for {args.dataset} names the wrong column, or the table "
            "writes the labels otherwise)"
            if unscanned
            else "",
        )
    # The settings this partition depends on, hashed: a changed catalogue or atlas shows up here.
    settings = {
        "dataset": args.dataset,
        "atlas": args.atlas,
        "catalogue_sha256": sha256_file(args.catalogue),
        "phenotype_sha256": sha256_file(args.phenotype),
        # Its rows of --dataset (the whole file for a table of this dataset alone): another
        # dataset's rows of a shared table changing does not rewrite this one's partitions.
        "qc_table_sha256": qc_rows_sha256(args.qc_table, args.dataset),
    }
    sources = [args.qc_table, args.phenotype, args.catalogue]
    sidecar = sidecar_path(args.phenotype)
    if sidecar.is_file():
        # Its Units change the stored values as the table does.
        settings["phenotype_sidecar_sha256"] = sha256_file(sidecar)
        sources.append(str(sidecar))
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    provenance: dict = {"settings": settings, "config_sha256": digest}
    # Read as read_phenotype read them (and logged): "age: months -> years (x 1/12)".
    units = phenotype_units(args.phenotype, args.dataset, catalogue)
    if conversions := {v: u.describe() for v, u in units.items() if u.factor is not None}:
        provenance["unit_conversions"] = conversions
    # Completeness of the stored participants' variables: a scanned subject without a
    # phenotype row is missing every variable; a row without connectomes is not stored.
    rows = phenotype[phenotype["subject"].isin(stored)]
    absent = pd.DataFrame({"subject": sorted(stored - set(phenotype["subject"]))})
    report = missingness(pd.concat([rows, absent], ignore_index=True), args.dataset, catalogue)
    # Stored all the same (another dataset may vary it), but said, and recorded in the report.
    warn_uninformative(report, args.phenotype, catalogue)
    identity = variables_id(phenotype, catalogue)
    # One commit: the three files become visible together, under the dataset's lock.
    destinations = [
        connectome_path(args.store_dir, args.atlas, args.dataset),
        variables_path(args.store_dir, args.dataset),
        missingness_path(args.store_dir, args.dataset),
    ]
    # Their records checked before the commit: a user's JSON where one goes was refused after
    # it, the new partitions left beside no record of theirs.
    check_recordable(destinations)
    with commit_dataset(args.store_dir, args.dataset, identity, destinations) as commit:
        connectomes = write_connectomes(
            args.store_dir,
            args.atlas,
            args.dataset,
            qc,
            phenotype,
            provenance,
            commit=commit,
            runs=runs,
        )
        outputs = [
            write_variables(args.store_dir, args.dataset, phenotype, catalogue, commit=commit),
            write_missingness(args.store_dir, args.dataset, report, commit=commit),
        ]
        commit.apply()
        # Sidecars describe the committed files; a kill before them leaves the rule failed
        # (Snakemake reruns it), never the data mixed.
        # The partition's sidecar also lists every matrix file stored (whole runs or windows).
        write_sidecar(connectomes, [*sources, *runs["matrix"]])
        record_outputs(outputs, sources)
    return 0
