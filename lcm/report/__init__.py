"""The evaluation report: figures (:mod:`~lcm.report.plots`) and a self-contained HTML page
(:mod:`~lcm.report.html`) built from the tidy metrics, predictions, pretraining history, BEI
held-out results and QC tables."""
