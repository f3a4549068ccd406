# LCM: raw fMRI -> connectomes -> Parquet feature store -> pretrained Large Connectome Model
# -> per-disease finetuning and honest evaluation -> report.
# This file only declares; the stages live in workflow/rules/, the logic in the `lcm` package.
import os

from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default: `--configfile my.yaml` replaces it (no merge), while `--config
# key=value` alone overrides keys of the demo config (Snakemake applies it on top of this file).
# The config is validated once, by LCM's check in common.smk (the schema, with one-line errors).
if not workflow.config_settings.configfiles:

    configfile: os.path.join(workflow.basedir, "config/config.yaml")

    # The demo's catalogue ships beside the workflow: found from any folder.
    if not os.path.exists(config["variables"]):
        config["variables"] = os.path.join(workflow.basedir, config["variables"])


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/fmriprep.smk"
include: "workflow/rules/connectome.smk"
include: "workflow/rules/store.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    """Default target: the report, the metrics tables and each binary task's finetuned model."""
    default_target: True
    input:
        get_default_targets(),


# `lcm run BIDS OUT participant` (BIDS-App style): every dataset up to the feature store.
rule participant:
    """Every dataset up to the feature store, as lcm run ... participant does."""
    input:
        get_participant_targets(),
