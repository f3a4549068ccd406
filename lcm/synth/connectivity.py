"""Subject-level functional connectivity: a network baseline plus variable, diagnosis and site
effects, each a pattern on blocks of the 7-network partition.

A subject's intended correlation matrix is

    C = B_s + sum_v size_v * score_v * P_v + size_dx * dx * P_dx + S_site,   then made valid,

where ``B_s`` is a factor-model baseline with individual jitter, ``P_v`` the unit-norm pattern of
environmental variable ``v`` on two network blocks, ``P_dx`` the diagnosis pattern and ``S_site`` a
site offset on every block. ``P_dx = s * M + sqrt(1 - s^2) * I``: ``M`` is a unit-norm mix of two
environmental patterns, ``I`` a unit-norm pattern on blocks no variable uses, orthogonalised
against every environmental pattern, and ``s`` is ``synth.shared_structure``; so ``s`` is the cosine
between ``P_dx`` and the environmental patterns' span, and at ``s = 0`` they share nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcm.synth.networks import NETWORKS
from lcm.synth.streams import rng_for

ENV_VARIABLES = ("age", "sex", "fluid_intelligence", "working_memory", "bmi", "education")
DIAGNOSES = ("autism", "alzheimers", "parkinsons", "schizophrenia")

# Norm of each effect over the upper triangle, per unit of the variable's score. Two blocks hold
# about 400 edges, so 0.9 is ~0.045 correlation per standard deviation on those edges.
ENV_SIZE = 0.9
DIAGNOSIS_SIZE = 1.4
SITE_SD = 0.03  # per-block correlation offset of a site
LOADING_MEAN, LOADING_SD = 0.7, 0.06  # ROI loading on its network factor
SUBJECT_LOADING_JITTER = 0.08  # log-scale individual variation of loadings
SUBJECT_NETWORK_JITTER = 0.05  # individual variation of network-to-network coupling
HOMOTOPIC_LOADING = 0.4  # extra shared factor of left/right homologues


@dataclass
class EffectModel:
    """The population-level connectivity model of one seed and atlas.

    Attributes
    ----------
    networks : numpy.ndarray of int, shape (n_rois,)
        Network index of each region.
    partners : numpy.ndarray of int, shape (n_rois,)
        Homotopic partner of each region, -1 if none.
    loadings : numpy.ndarray, shape (n_rois,)
        Population loading of each region on its network factor.
    network_corr : numpy.ndarray, shape (7, 7)
        Population correlation between network factors (diagonal 1).
    patterns : dict of str to numpy.ndarray (n_rois, n_rois)
        Unit-norm (upper triangle) symmetric effect patterns, zero diagonal.
    blocks : dict of str to list of (str, str, float)
        Network blocks of each pattern with their sign (environmental and independent parts).
    env_mix : dict of str to dict of str to float
        For each diagnosis, weights of the environmental patterns in its shared part.
    shared_structure : float
    sizes : dict of str to float
        Effect norm per unit score.
    """

    networks: np.ndarray
    partners: np.ndarray
    loadings: np.ndarray
    network_corr: np.ndarray
    patterns: dict[str, np.ndarray]
    blocks: dict[str, list[tuple[str, str, float]]]
    env_mix: dict[str, dict[str, float]]
    shared_structure: float
    sizes: dict[str, float] = field(default_factory=dict)

    @property
    def n_rois(self) -> int:
        """Number of regions."""
        return len(self.networks)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for ``ground_truth.json``."""
        iu = np.triu_indices(self.n_rois, k=1)
        env = np.stack([self.patterns[v][iu] for v in ENV_VARIABLES])
        out: dict[str, Any] = {}
        for name, pattern in self.patterns.items():
            vec = pattern[iu]
            entry: dict[str, Any] = {
                "blocks": [list(b) for b in self.blocks[name]],
                "size": self.sizes[name],
                "n_edges": int(np.count_nonzero(vec)),
                "max_abs_edge_effect_per_unit": round(
                    float(np.abs(vec).max()) * self.sizes[name], 6
                ),
            }
            if name in self.env_mix:
                entry["env_mix"] = self.env_mix[name]
                entry["cosine_with_env_span"] = round(_cosine_with_span(vec, env), 6)
            out[name] = entry
        return out


def build_effect_model(
    networks: np.ndarray, partners: np.ndarray, seed: int, shared_structure: float
) -> EffectModel:
    """Draw the population model: baseline, variable patterns and diagnosis patterns.

    It depends only on ``seed`` and the atlas, never on the consortium, so every synthetic
    consortium shares the same brain–environment effects (what pretraining should transfer).

    Parameters
    ----------
    networks : numpy.ndarray of int, shape (n_rois,)
    partners : numpy.ndarray of int, shape (n_rois,)
    seed : int
        Master seed.
    shared_structure : float
        In [0, 1]: cosine between diagnosis and environmental patterns.
    """
    rng = rng_for("effects", seed)
    n_rois = len(networks)
    k = len(NETWORKS)
    loadings = np.clip(rng.normal(LOADING_MEAN, LOADING_SD, n_rois), 0.4, 0.85)
    network_corr = _network_correlation(rng, k)
    present = sorted(set(networks.tolist()))
    all_blocks = [(a, b) for i, a in enumerate(present) for b in present[i:]]
    order = rng.permutation(len(all_blocks))
    pool = [all_blocks[i] for i in order]

    patterns: dict[str, np.ndarray] = {}
    blocks: dict[str, list[tuple[str, str, float]]] = {}
    sizes: dict[str, float] = {}
    for var in ENV_VARIABLES:
        chosen, pool = pool[:2], pool[2:] + pool[:2]  # reuse blocks only if the atlas is tiny
        signs = rng.choice([-1.0, 1.0], size=len(chosen))
        patterns[var] = _unit(_block_pattern(networks, chosen, signs))
        blocks[var] = _named(chosen, signs)
        sizes[var] = ENV_SIZE
    env_vecs = np.stack([_upper(patterns[v]) for v in ENV_VARIABLES])

    env_mix: dict[str, dict[str, float]] = {}
    used = {b for v in ENV_VARIABLES for b in _block_keys(blocks[v])}
    free = [b for b in pool if (NETWORKS[b[0]], NETWORKS[b[1]]) not in used]
    for dx in DIAGNOSES:
        mixed_vars = rng.choice(len(ENV_VARIABLES), size=2, replace=False)
        weights = rng.uniform(0.5, 1.0, size=2) * rng.choice([-1.0, 1.0], size=2)
        mix = sum(w * patterns[ENV_VARIABLES[i]] for i, w in zip(mixed_vars, weights, strict=True))
        chosen, free = (free[:3], free[3:]) if len(free) >= 3 else (pool[:3], free)
        signs = rng.choice([-1.0, 1.0], size=len(chosen))
        independent = _orthogonalise(_block_pattern(networks, chosen, signs), env_vecs)
        s = float(shared_structure)
        patterns[dx] = _unit(s * _unit(mix) + np.sqrt(max(0.0, 1.0 - s * s)) * independent)
        mixed_names = {ENV_VARIABLES[i] for i in mixed_vars}
        blocks[dx] = [b for v in sorted(mixed_names) for b in blocks[v]] + _named(chosen, signs)
        env_mix[dx] = {
            ENV_VARIABLES[i]: round(float(w), 6) for i, w in zip(mixed_vars, weights, strict=True)
        }
        sizes[dx] = DIAGNOSIS_SIZE
    return EffectModel(
        networks=networks,
        partners=partners,
        loadings=loadings,
        network_corr=network_corr,
        patterns=patterns,
        blocks=blocks,
        env_mix=env_mix,
        shared_structure=float(shared_structure),
        sizes=sizes,
    )


def site_offset(model: EffectModel, seed: int, consortium: str, site: str) -> np.ndarray:
    """Correlation offset shared by a site's subjects (scanner and protocol), (n_rois, n_rois).

    Parameters
    ----------
    model : EffectModel
        The population model (gives each region's network).
    seed : int
        Master seed.
    consortium : str
        Consortium name.
    site : str
        Site label; each site of each consortium has its own stream.
    """
    rng = rng_for("site", seed, consortium, site)
    k = len(NETWORKS)
    block = rng.normal(0.0, SITE_SD, (k, k))
    block = (block + block.T) / np.sqrt(2.0)
    offset = block[np.ix_(model.networks, model.networks)]
    np.fill_diagonal(offset, 0.0)
    return offset


def subject_correlation(
    model: EffectModel,
    rng: np.random.Generator,
    scores: dict[str, float],
    site: np.ndarray | None = None,
) -> np.ndarray:
    """Intended correlation matrix of one subject.

    Parameters
    ----------
    model : EffectModel
    rng : numpy.random.Generator
        The subject's own stream (individual variation).
    scores : dict of str to float
        Standardised score of each environmental variable and 0/1 of each diagnosis; absent
        names contribute nothing.
    site : numpy.ndarray, optional
        The subject's site offset (:func:`site_offset`).

    Returns
    -------
    numpy.ndarray, shape (n_rois, n_rois)
        Symmetric positive definite, unit diagonal.
    """
    n = model.n_rois
    k = model.network_corr.shape[0]
    lam = np.clip(model.loadings * np.exp(rng.normal(0, SUBJECT_LOADING_JITTER, n)), 0.2, 0.88)
    jitter = rng.normal(0.0, SUBJECT_NETWORK_JITTER, (k, k))
    phi = _nearest_correlation(model.network_corr + (jitter + jitter.T) / np.sqrt(2.0))
    corr = np.outer(lam, lam) * phi[np.ix_(model.networks, model.networks)]
    has = model.partners >= 0
    idx = np.flatnonzero(has)
    corr[idx, model.partners[idx]] += HOMOTOPIC_LOADING**2
    for name, value in scores.items():
        if name in model.patterns and np.isfinite(value) and value != 0:
            corr += model.sizes[name] * value * model.patterns[name]
    if site is not None:
        corr += site
    np.fill_diagonal(corr, 1.0)
    return _nearest_correlation(corr, floor=0.05)


def _network_correlation(rng: np.random.Generator, k: int) -> np.ndarray:
    # Positive coupling between networks on average, strongest among association networks.
    base = rng.uniform(-0.05, 0.45, (k, k))
    base = (base + base.T) / 2
    np.fill_diagonal(base, 1.0)
    return _nearest_correlation(base, floor=0.1)


def _nearest_correlation(matrix: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Clip eigenvalues at ``floor`` and rescale to unit diagonal (one projection step)."""
    sym = (matrix + matrix.T) / 2
    try:
        # Usually already valid: a Cholesky test is ten times cheaper than eigh.
        np.linalg.cholesky(sym - floor * np.eye(len(sym)))
        out = sym
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(sym)
        out = (vecs * np.maximum(vals, floor)) @ vecs.T
    d = np.sqrt(np.diag(out))
    out = out / np.outer(d, d)
    np.fill_diagonal(out, 1.0)
    return out


def _block_pattern(networks: np.ndarray, chosen: list, signs: np.ndarray) -> np.ndarray:
    n = len(networks)
    pattern = np.zeros((n, n))
    for (a, b), sign in zip(chosen, signs, strict=True):
        mask = np.outer(networks == a, networks == b)
        pattern[mask | mask.T] = sign
    np.fill_diagonal(pattern, 0.0)
    return pattern


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(matrix.shape[0], k=1)]


def _unit(pattern: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(_upper(pattern))
    return pattern / norm if norm > 0 else pattern


def _orthogonalise(pattern: np.ndarray, env_vecs: np.ndarray) -> np.ndarray:
    """Remove from ``pattern`` its projection on the span of ``env_vecs`` (rows); unit norm."""
    vec = _upper(pattern)
    q, _ = np.linalg.qr(env_vecs.T)
    vec = vec - q @ (q.T @ vec)
    n = pattern.shape[0]
    out = np.zeros_like(pattern)
    iu = np.triu_indices(n, k=1)
    out[iu] = vec
    return _unit(out + out.T)


def _cosine_with_span(vec: np.ndarray, env_vecs: np.ndarray) -> float:
    q, _ = np.linalg.qr(env_vecs.T)
    proj = q @ (q.T @ vec)
    return float(np.linalg.norm(proj) / max(np.linalg.norm(vec), 1e-12))


def _named(chosen: list, signs: np.ndarray) -> list[tuple[str, str, float]]:
    return [(NETWORKS[a], NETWORKS[b], float(s)) for (a, b), s in zip(chosen, signs, strict=True)]


def _block_keys(named: list[tuple[str, str, float]]) -> list[tuple[str, str]]:
    return [(a, b) for a, b, _ in named]
