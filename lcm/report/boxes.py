"""The report's warning boxes: the markup every warning (and boxed note) shares.

A warning of several items (tasks, models at a label fraction, checks) reads as its lead,
then one list item per item, then its closing sentence; one of a single item stays one
paragraph. The page (:func:`lcm.report.html.render_report`) gives every ``class="warn"``
box :data:`WARNING_ATTRIBUTES`.
"""

from __future__ import annotations

from collections.abc import Sequence

# A warning's attributes on the page: a note that assistive technology calls a warning.
WARNING_ATTRIBUTES = 'class="warn" role="note" aria-roledescription="warning"'


def listed(lead: str, items: Sequence[str]) -> str:
    """A lead and its items: ``lead item`` for one item (or none), else the lead and a list.

    Parameters
    ----------
    lead : str
        HTML text before the items; before a list it gets a colon unless it already ends
        with ``:`` or ``.``.
    items : sequence of str
        HTML clauses, each without a closing full stop.

    Returns
    -------
    str
        Inline HTML, or the lead followed by a ``<ul>`` of one ``<li>`` per item.
    """
    if len(items) > 1:
        head = lead if lead.endswith((":", ".")) else f"{lead}:"
        return head + "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"
    return " ".join(text for text in (lead, *items) if text)


def box(
    lead: str, items: Sequence[str], closing: str = "", *, cls: str = "warn", box_id: str = ""
) -> str:
    """A warning (or note) box: its lead, its items, then its closing sentence.

    One item reads as one paragraph, ``lead item. closing``; several are listed under the
    lead (:func:`listed`) in a ``<div>``, since a ``<p>`` cannot hold a ``<ul>``.

    Parameters
    ----------
    lead : str
        HTML text: the bold lead and the verdict the items support.
    items : sequence of str
        HTML clauses, one per task, model and fraction or check, without a closing full stop.
    closing : str, default ""
        HTML sentence(s) after the items.
    cls : str, default "warn"
        The box's class: ``warn``, or ``note`` for a box that warns of nothing.
    box_id : str, default ""
        The box's ``id``, if any.

    Returns
    -------
    str
        An HTML ``<p>`` or ``<div>``.
    """
    attributes = f'class="{cls}"' + (f' id="{box_id}"' if box_id else "")
    after = f" {closing}" if closing else ""
    if len(items) > 1:
        return f"<div {attributes}>{listed(lead, items)}{after}</div>"
    return f"<p {attributes}>{listed(lead, items)}.{after}</p>"
