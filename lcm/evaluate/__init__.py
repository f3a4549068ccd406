"""Cross-validated evaluation of disease tasks: subject-level splits, label-fraction subsets,
baselines beside LCM, and fold metrics in one tidy table.

Modules: :mod:`~lcm.evaluate.splits` (folds and labeled subsets), :mod:`~lcm.evaluate.metrics`
(fold metrics and their summaries), :mod:`~lcm.evaluate.baselines` (logistic regression and
the shuffled-label control), :mod:`~lcm.evaluate.protocol` (model registry and the protocol).
"""
