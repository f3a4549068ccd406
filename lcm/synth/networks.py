"""Assignment of an atlas's regions to seven canonical resting-state networks.

For AAL the assignment is by region name, following the usual anatomical correspondence with
the Yeo 7-network parcellation (occipital -> visual, pre/postcentral -> somatomotor, superior
parietal -> dorsal attention, insula/mid-cingulate -> ventral attention, orbitofrontal and medial
temporal -> limbic, lateral prefrontal -> frontoparietal, medial prefrontal/posterior cingulate/
angular -> default; subcortical and cerebellar regions go to the network they couple with most).
Any other atlas is split by k-means of region centroids into seven spatial clusters, ordered by
their centroid's y then z, which gives contiguous "networks" with a stable numbering.
"""

from __future__ import annotations

import numpy as np

from lcm.atlas import Atlas

NETWORKS = (
    "Visual",
    "Somatomotor",
    "DorsalAttention",
    "VentralAttention",
    "Limbic",
    "Frontoparietal",
    "Default",
)

# AAL name prefix -> network; the first matching prefix wins, so longer prefixes come first.
_AAL_PREFIXES = (
    ("Frontal_Sup_Orb", "Limbic"),
    ("Frontal_Mid_Orb", "Limbic"),
    ("Frontal_Inf_Orb", "Limbic"),
    ("Frontal_Med_Orb", "Limbic"),
    ("Frontal_Sup_Medial", "Default"),
    ("Frontal_Inf_Oper", "VentralAttention"),
    ("Frontal_Inf_Tri", "Frontoparietal"),
    ("Frontal_Sup", "Frontoparietal"),
    ("Frontal_Mid", "Frontoparietal"),
    ("Precentral", "Somatomotor"),
    ("Postcentral", "Somatomotor"),
    ("Rolandic", "Somatomotor"),
    ("Supp_Motor", "Somatomotor"),
    ("Paracentral", "Somatomotor"),
    ("Heschl", "Somatomotor"),
    ("Temporal_Sup", "Somatomotor"),
    ("Temporal_Pole", "Limbic"),
    ("Temporal_Mid", "Default"),
    ("Temporal_Inf", "DorsalAttention"),
    ("Olfactory", "Limbic"),
    ("Rectus", "Limbic"),
    ("Insula", "VentralAttention"),
    ("Cingulum_Ant", "Default"),
    ("Cingulum_Mid", "VentralAttention"),
    ("Cingulum_Post", "Default"),
    ("Hippocampus", "Limbic"),
    ("ParaHippocampal", "Limbic"),
    ("Amygdala", "Limbic"),
    ("Calcarine", "Visual"),
    ("Cuneus", "Visual"),
    ("Lingual", "Visual"),
    ("Occipital", "Visual"),
    ("Fusiform", "Visual"),
    ("Parietal_Sup", "DorsalAttention"),
    ("Parietal_Inf", "DorsalAttention"),
    ("SupraMarginal", "VentralAttention"),
    ("Angular", "Default"),
    ("Precuneus", "Default"),
    ("Caudate", "Frontoparietal"),
    ("Putamen", "VentralAttention"),
    ("Pallidum", "VentralAttention"),
    ("Thalamus", "Frontoparietal"),
    ("Cerebelum_Crus1", "Default"),
    ("Cerebelum_Crus2", "Frontoparietal"),
    ("Cerebelum_3", "Somatomotor"),
    ("Cerebelum_4_5", "Somatomotor"),
    ("Cerebelum_6", "VentralAttention"),
    ("Cerebelum_7b", "Frontoparietal"),
    ("Cerebelum_8", "DorsalAttention"),
    ("Cerebelum_9", "Default"),
    ("Cerebelum_10", "Limbic"),
    ("Vermis_1_2", "Somatomotor"),
    ("Vermis_3", "Somatomotor"),
    ("Vermis_4_5", "Somatomotor"),
    ("Vermis_6", "VentralAttention"),
    ("Vermis_7", "VentralAttention"),
    ("Vermis_8", "DorsalAttention"),
    ("Vermis_9", "Default"),
    ("Vermis_10", "Limbic"),
)


def assign_networks(atlas: Atlas) -> tuple[np.ndarray, str]:
    """Network index (into :data:`NETWORKS`) of each region, and the method used.

    Parameters
    ----------
    atlas : Atlas

    Returns
    -------
    networks : numpy.ndarray of int, shape (n_rois,)
    method : {"aal-names", "kmeans-centroids"}
    """
    names = atlas.labels["name"].tolist()
    by_name = [_aal_network(n) for n in names]
    if all(net is not None for net in by_name):
        return np.array([NETWORKS.index(n) for n in by_name]), "aal-names"
    return _kmeans_networks(atlas), "kmeans-centroids"


def _aal_network(name: str) -> str | None:
    for prefix, network in _AAL_PREFIXES:
        if name.startswith(prefix):
            return network
    return None


def roi_centroids(atlas: Atlas) -> np.ndarray:
    """Centroid of each region in millimetres, shape (n_rois, 3).

    Parameters
    ----------
    atlas : Atlas
        A deterministic (label image) atlas.
    """
    from scipy import ndimage  # only atlases whose names do not say the network

    data = np.asarray(atlas.img.dataobj)
    index = atlas.labels["index"].to_numpy()
    vox = np.array(ndimage.center_of_mass(np.ones_like(data), labels=data, index=index))
    return vox @ atlas.img.affine[:3, :3].T + atlas.img.affine[:3, 3]


def homotopic_partners(names: list[str]) -> np.ndarray:
    """Index of each region's other-hemisphere partner (``_L``/``_R`` names), else -1.

    Parameters
    ----------
    names : list of str
        Region names, in the atlas's order.

    Returns
    -------
    numpy.ndarray of int, shape (n_rois,)
    """
    lookup = {n: i for i, n in enumerate(names)}
    partner = np.full(len(names), -1)
    for i, n in enumerate(names):
        for a, b in (("_L", "_R"), ("_R", "_L")):
            if n.endswith(a) and n[: -len(a)] + b in lookup:
                partner[i] = lookup[n[: -len(a)] + b]
    return partner


def _kmeans_networks(atlas: Atlas) -> np.ndarray:
    from sklearn.cluster import KMeans

    xyz = roi_centroids(atlas)
    k = min(len(NETWORKS), len(xyz))
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(xyz)
    # Renumber clusters by centroid position so the numbering does not depend on k-means order.
    centres = np.array([xyz[labels == c].mean(axis=0) for c in range(k)])
    order = np.lexsort((centres[:, 2], centres[:, 1]))
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    return rank[labels]
