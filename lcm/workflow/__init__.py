"""What the Snakemake workflow asks of the package at parse time.

:mod:`lcm.workflow.plan` lists datasets, subjects and runs for the DAG, :mod:`lcm.workflow.hash`
the ``lcm`` code each verb runs (a rule param, so code edits rerun exactly the affected rules),
and :mod:`lcm.workflow.resources` the job resources that depend on a job's data.
"""
