"""``lab report``: the dashboard's figures as one self-contained HTML page.

One file, no scripts, no fonts or styles from elsewhere: the charts are matplotlib SVG inlined
in the page (text kept as text, so the numbers can be searched and copied), the tables plain
HTML, rendered with a Jinja2 template. It opens offline, from a mail attachment or a static
host, and is what a learner links from a CV. The DAG writes it into each run's folder.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_env.config import Settings, get_settings
from lab_env.dashboard import data
from lab_env.errors import LabError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

TEMPLATE = Path(__file__).with_name("templates") / "report.html.j2"
REPORT = "report.html"


@dataclass(frozen=True)
class Figures:
    """Everything the report shows, computed from gold (and the last run) once."""

    day: dt.date
    market: data.Market
    leaders: pd.DataFrame
    movers: pd.DataFrame
    freshness: data.Freshness
    run: data.LastRun | None
    charts: dict[str, str]  # name -> inline SVG
    featured: list[str]  # the symbols whose price charts are shown


def figures(gold: data.Gold, settings: Settings, day: dt.date | None = None,
            featured: int = 2) -> Figures:
    """The report's numbers and charts for ``day`` (default: gold's latest day)."""
    days = data.trade_days(gold)
    if not days:
        raise LabError("Gold has no days yet: there is nothing to report.",
                       "run the pipeline first: `lab run --start 2025-03-29 --end 2025-03-31`.")
    day = day or days[0]
    if day not in days:
        raise LabError(f"Gold has no facts for {day}.",
                       f"pick a day between {days[-1]} and {days[0]} with --day.")
    leaders = data.leaders(gold, day)
    charts = {"market": _svg(_market_chart(data.market_history(gold, day))),
              "ranks": _svg(_rank_chart(data.rank_history(gold, day)))}
    symbols = []
    listing = data.assets(gold).set_index("symbol")
    for symbol in leaders["symbol"].head(featured):
        asset_id = listing.loc[symbol, "asset_id"]
        history = data.asset_history(gold, str(asset_id), day)
        charts[f"asset_{symbol}"] = _svg(_asset_chart(history, symbol))
        symbols.append(symbol)
    return Figures(day, data.market(gold, day), leaders, data.top_movers(gold, day),
                   data.freshness(gold), data.last_run(settings), charts, symbols)


def render(fig: Figures, title: str = "Lakehouse Lab: gold report") -> str:
    """The page's HTML."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters.update(usd=data.usd, pct=data.pct,
                       rank=data.signed)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        title=title, fig=fig, svg=lambda name: _markup(fig.charts[name]),
        leaders=fig.leaders.to_dict("records"), movers=fig.movers.to_dict("records"),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def build_report(output: Path | None = None, settings: Settings | None = None,
                 day: dt.date | None = None) -> Path:
    """Write the report (default: into the latest run's folder) and return its path."""
    settings = settings or get_settings()
    gold = data.open_gold(settings)
    fig = figures(gold, settings, day)
    if output is None:
        if fig.run is None:
            raise LabError(f"No run under {settings.runs_dir} to put the report in.",
                           "give the file with --output report.html, or run `lab run` first.")
        output = fig.run.folder / REPORT
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".tmp")
    partial.write_text(render(fig), encoding="utf-8")
    partial.replace(output)  # a reader never sees half a page
    return output


# ----- charts: matplotlib, as SVG with real text -----


def _figure(height: float = 3.2) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, height))
    ax = fig.subplots()
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _dates(ax: Any) -> None:
    import matplotlib.dates as mdates

    # One tick per day at most: the default locator puts hours between days on short ranges.
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, _span_days(ax) // 8)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))


def _span_days(ax: Any) -> int:
    low, high = ax.get_xlim()
    return int(high - low)


def _market_chart(history: pd.DataFrame) -> Figure:
    fig, ax = _figure()
    ax.plot(history.trade_date, history.market_cap_usd / 1e9, linewidth=2, color="#1f77b4")
    ax.set_title("Total market cap (USD billions)", loc="left")
    _dates(ax)
    return fig


def _asset_chart(history: pd.DataFrame, symbol: str) -> Figure:
    fig, ax = _figure()
    ax.plot(history.trade_date, history.close_usd, color="0.6", linewidth=1, label="close")
    ax.plot(history.trade_date, history.ma_7d_usd, linewidth=1.8, label="7-day average")
    ax.plot(history.trade_date, history.ma_30d_usd, linewidth=1.8, label="30-day average")
    ax.set_title(f"{symbol}: close and moving averages (USD)", loc="left")
    ax.legend(loc="upper left", frameon=False)
    _dates(ax)
    return fig


def _rank_chart(ranks: pd.DataFrame) -> Figure:
    fig, ax = _figure(4)
    for symbol, one in ranks.groupby("symbol", sort=False):
        ax.plot(one.trade_date, one.market_cap_rank, marker="o", markersize=3, linewidth=1.4)
        ax.annotate(str(symbol), (one.trade_date.iloc[-1], one.market_cap_rank.iloc[-1]),
                    xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_title("Market-cap rank of the last day's top 10", loc="left")
    _dates(ax)
    return fig


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, no DOCTYPE, no metadata."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lakehouse-lab"}):
        sink = io.StringIO()
        fig.savefig(sink, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = sink.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    # HTML gives inline SVG its namespaces itself; the URIs would only read like links.
    return re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text, count=3)


def _markup(svg: str) -> Any:
    from markupsafe import Markup

    return Markup(svg)  # our own matplotlib output, not user input
