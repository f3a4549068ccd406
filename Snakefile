# LCM: raw fMRI -> connectomes -> Parquet feature store -> pretrained Large Connectome Model
# -> per-disease finetuning and honest evaluation -> report.
# This file only declares; the stages live in workflow/rules/, the logic in the `lcm` package.
from snakemake.utils import min_version, validate

from lcm.config import validate_config

min_version("9.0")


# The demo config is the default; `--configfile my.yaml` replaces it instead of merging into it.
if not config:

    configfile: "config/config.yaml"


# LCM's check first: it names the key, what was expected and what was received, in one line.
validate_config(config, source="config")
validate(config, "workflow/schemas/config.schema.yaml")


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
    default_target: True
    input:
        report_outputs(),
        expand(finetuned_model("{task}"), task=CLASSIFICATION_TASKS),
