"""The Figure class the plots are made with: a matplotlib ``Figure`` that shows itself in Jupyter.

A figure made without pyplot has no canvas manager, so a fresh kernel (no ``%matplotlib inline``,
no pyplot imported) would print ``<Figure size …>`` for it. ``_repr_png_`` makes IPython's rich
display render it as a PNG instead; where the inline backend has registered its own formatter for
``Figure``, IPython uses that one (it looks types up before ``_repr_*_`` methods), so a figure is
never shown twice.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

__all__ = ["NotebookFigure"]


class NotebookFigure(Figure):
    """A :class:`matplotlib.figure.Figure` with a PNG representation for notebooks."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        return buffer.getvalue()
