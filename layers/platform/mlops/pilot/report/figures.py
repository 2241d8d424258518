"""How the pilot report's charts are drawn and embedded: sizes, colours, and each figure as an inline PNG.

Every chart is a matplotlib `Figure` (no pyplot, so no global figure registry and no backend to select) saved
as a PNG and embedded in an <img> as a `data:` URL, so the page needs nothing from the network.
"""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure

from mlops.pilot.report.formatting import escape_html

# Figures are laid out in inches at CSS_PX_PER_INCH (so a 9-inch figure fills the 900 px content column) and
# saved at SAVE_DPI, so they stay sharp on high-density screens.
CSS_PX_PER_INCH = 100
SAVE_DPI = 150
FULL_WIDTH_IN = 9.0
HALF_WIDTH_IN = 4.45
RAISES_COLOUR = "#d62728"  # a contribution that raises churn risk
LOWERS_COLOUR = "#1f77b4"
MODEL_COLOUR = "#1f77b4"
REFERENCE_COLOUR = "#7f7f7f"
CHOSEN_COLOUR = "#2ca02c"


def new_figure(width_in: float, height_in: float) -> Figure:
    # A bare Figure needs no pyplot: nothing is registered globally, so nothing has to be closed.
    return Figure(figsize=(width_in, height_in), layout="constrained")


def embed_figure(fig: Figure, name: str, alt: str) -> str:
    """The figure as an <img> with a base64 PNG data URL; the figure is cleared once saved."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=SAVE_DPI, facecolor="white")
        width, height = (round(size * CSS_PX_PER_INCH) for size in fig.get_size_inches())
    finally:
        fig.clear()
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure id="figure-{name}">'
        f'<img data-figure="{name}" src="data:image/png;base64,{encoded}" alt="{escape_html(alt)}" '
        f'width="{width}" height="{height}"></figure>'
    )


def escape_mathtext(text: object) -> str:
    """Text for matplotlib, which would read `$...$` as mathtext."""
    return str(text).replace("$", r"\$")
