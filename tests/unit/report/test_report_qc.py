"""QC part of the report: scrubbing and parcel-coverage summaries, the exclusion list, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcm.report.html import qc_section
from lcm.report.plots import figure_png, parcel_figure, scrubbing_figure
from lcm.report.tables import exclusion_list, parcel_emptiness, qc_counts, scrubbing_table


def _qc() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["a", "a", "a", "b", "b", "c"],
            "subject": ["1", "2", "3", "1", "2", "1"],
            "session": ["", "", "", "", "", ""],
            "run_key": ["sub-1", "sub-2", "sub-3", "sub-1", "sub-2", "sub-1"],
            "included": [True, True, False, True, True, True],
            "reason": ["", "", "only 10 of 100 volumes left", "", "", ""],
            "mean_fd": [0.1, 0.2, 0.9, 0.15, np.nan, np.nan],
            "n_volumes": [100, 200, 100, 50, 50, np.nan],  # c: a precomputed connectome
            "n_volumes_kept": [90, 200, 10, 25, 50, np.nan],
            "empty_rois": ["L_Amyg,R_Amyg", "L_Amyg", "", "", np.nan, "X"],
        }
    )


def test_scrubbing_table_counts_included_runs_with_volumes() -> None:
    scrub = scrubbing_table(_qc())
    assert scrub["dataset"].tolist() == ["a", "a", "b", "b"]
    np.testing.assert_allclose(scrub["pct_scrubbed"], [10.0, 0.0, 50.0, 0.0])
    np.testing.assert_allclose(scrub["retained"], [90, 200, 25, 50])
    counts = qc_counts(_qc()).set_index("dataset")
    assert counts.loc["a", "median % scrubbed"] == 5.0 and counts.loc["b", "runs"] == 2
    assert np.isnan(counts.loc["c", "median % scrubbed"])


def test_runs_that_no_scrubbing_applied_to_read_na_not_zero() -> None:
    """ROI time series denoised elsewhere carry pct_scrubbed n/a: the median is n/a, not 0,
    and the figure draws no 0 % for them."""
    qc = _qc()
    qc["pct_scrubbed"] = [10.0, 0.0, np.nan, np.nan, np.nan, np.nan]  # b: not scrubbed
    scrub = scrubbing_table(qc)
    np.testing.assert_allclose(scrub["pct_scrubbed"], [10.0, 0.0, np.nan, np.nan])
    np.testing.assert_allclose(scrub["retained"], [90, 200, 25, 50])
    counts = qc_counts(qc).set_index("dataset")
    assert counts.loc["a", "median % scrubbed"] == 5.0
    assert np.isnan(counts.loc["b", "median % scrubbed"])
    fig = scrubbing_figure(scrub)
    assert "n/a" in [t.get_text() for t in fig.axes[0].texts]
    assert figure_png(fig).startswith(b"\x89PNG")


def test_parcel_emptiness_shares() -> None:
    table = parcel_emptiness(_qc())
    got = {(r.dataset, r.parcel): (r.runs_empty, r.runs) for r in table.itertuples()}
    # The excluded run of "a" does not count; b has no empty parcel.
    assert got == {("a", "L_Amyg"): (2, 2), ("a", "R_Amyg"): (1, 2), ("c", "X"): (1, 1)}
    assert table.iloc[0]["share"] == 1.0 and table.iloc[-1]["parcel"] == "R_Amyg"


def test_exclusion_list_names_each_run_and_reason() -> None:
    listed = exclusion_list(_qc())
    assert listed.to_dict("records") == [
        {
            "dataset": "a",
            "subject": "3",
            "session": "",
            "run_key": "sub-3",
            "reason": "only 10 of 100 volumes left",
        }
    ]


def test_qc_figures_render_png() -> None:
    for fig in (scrubbing_figure(scrubbing_table(_qc())), parcel_figure(parcel_emptiness(_qc()))):
        png = figure_png(fig)
        assert png.startswith(b"\x89PNG") and len(png) > 2000


def test_qc_section_embeds_figures_and_exclusions() -> None:
    html = qc_section(_qc())
    assert html.count("<img") == 3 and "data:image/png;base64," in html
    assert "Excluded runs (1)" in html and "only 10 of 100 volumes left" in html
    # QC tables without volume counts or parcel lists (older tables): notes, no crash.
    bare = _qc().drop(columns=["n_volumes", "n_volumes_kept", "empty_rois"])
    html = qc_section(bare)
    assert html.count("<img") == 1 and "No volume counts" in html
    assert "http" not in html  # self-contained


def test_qc_tables_of_no_run_give_a_note_not_a_crash() -> None:
    """Headers alone (no run reached QC): counting them per dataset raised in pandas."""
    html = qc_section(_qc().iloc[:0])
    assert "The QC tables list no run." in html and "<img" not in html


def test_counts_of_a_dataset_with_imported_runs_show_as_integers(tmp_path) -> None:
    """QC tables as `lcm connectome` writes them, one of imported matrices (counts ``n/a``):
    the page shows counts as integers and the imported dataset's as n/a. The same counts as
    the store's readers give them (nullable Int32, lcm.store.read.ids_frame) read alike."""
    from helpers.report import bare

    from lcm.report.html import table_html
    from lcm.report.tables import read_qc

    head = "dataset\tsubject\trun_key\tincluded\treason\tmean_fd\tn_volumes\tn_volumes_kept\n"
    counted, imported = tmp_path / "counted_qc.tsv", tmp_path / "imported_qc.tsv"
    counted.write_text(
        head + "a\t1\tsub-1\ttrue\t\t0.1\t200\t190\na\t2\tsub-2\ttrue\t\t0.2\t100\t96\n"
    )
    imported.write_text(head + "b\t3\tsub-3\ttrue\t\tn/a\tn/a\tn/a\n")
    qc = read_qc([counted, imported])
    nullable = qc.astype({"n_volumes": "Int32", "n_volumes_kept": "Int32"})
    assert nullable["n_volumes"].isna().tolist() == [False, False, True]
    for frame in (qc, nullable):
        scrub = scrubbing_table(frame)
        assert scrub["dataset"].tolist() == ["a", "a"]  # b has no counts: not a scrubbed run
        assert scrub["retained"].tolist() == [190, 96]
        page = bare(table_html(qc_counts(frame), "QC counts", row_headers=1))
        assert "<td>143</td><td>4.5</td></tr>" in page  # medians: 143 retained, 4.5 % scrubbed
        assert "<td>n/a</td><td>n/a</td></tr>" in page  # b: imported, nothing counted
        assert "143.0" not in page and ".000<" not in page.replace("0.150", "")
