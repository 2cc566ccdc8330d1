"""Tables printed by the benchmark: aligned plain text or GitHub markdown."""

import math


def fmt(value, digits=3):
    """Format a number with ``digits`` significant digits, never in e-notation.

    Parameters
    ----------
    value : float or None
        The number; None and NaN print as an em dash.
    digits : int, default=3
        Significant digits kept.

    Returns
    -------
    text : str
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def joined(values, digits=3, sep=" / "):
    """Several numbers in one cell, e.g. one per library: ``"1.23 / 4.56"``."""
    return sep.join(fmt(v, digits) for v in values)


class Table:
    """A titled table with optional notes under it.

    Parameters
    ----------
    title : str
        Printed above the table (a ``###`` heading in markdown).
    columns : sequence of str
        Column headers.
    left : int, default=1
        How many leading columns are left-aligned labels; the others are
        right-aligned figures.
    """

    def __init__(self, title, columns, left=1):
        self.title = title
        self.columns = list(columns)
        self.left = left
        self.rows = []
        self.notes = []

    def add(self, *cells):
        """Append a row; cells are converted with ``str``."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def note(self, text):
        """Append a line printed under the table."""
        self.notes.append(text)

    def render(self, markdown=False):
        """The table as text.

        Parameters
        ----------
        markdown : bool, default=False
            GitHub markdown instead of aligned plain text.

        Returns
        -------
        text : str
        """
        if markdown:
            return self._markdown()
        return self._plain()

    def _plain(self):
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]

        def line(cells):
            out = []
            for i, (c, w) in enumerate(zip(cells, widths)):
                out.append(c.ljust(w) if i < self.left else c.rjust(w))
            return "  ".join(out).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [self.title, "=" * len(self.title), line(self.columns), rule]
        lines += [line(r) for r in self.rows]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def _markdown(self):
        def line(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        align = [":---" if i < self.left else "---:" for i in range(len(self.columns))]
        lines = [f"### {self.title}", "", line(self.columns), "| " + " | ".join(align) + " |"]
        lines += [line(r) for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"
