"""The lab's dashboard on gold: ``lab dashboard`` serves it (``streamlit run`` works too).

Four tabs: the market on a day, one asset's history, the day's top movers, and how fresh gold
is with the last run's quality verdict. Every number comes from :mod:`lab_env.dashboard.data`;
this script only lays it out. Gold is reloaded when a run publishes new snapshots.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from lab_env.config import get_settings
from lab_env.dashboard import data
from lab_env.errors import LabError

st.set_page_config(page_title="Lakehouse Lab: gold", layout="wide")


@st.cache_resource(max_entries=2, show_spinner="Reading gold from Iceberg ...")
def _gold_tables(key: tuple) -> tuple:
    """The gold tables as Arrow, read once per published state (``key``) and shared."""
    return data.load_tables(get_settings())


def _line(frame: pd.DataFrame, y: list[str], title: str, y_title: str,
          reverse: bool = False, names: dict[str, str] | None = None) -> alt.Chart:
    """A line per column of ``y`` over the days (a day without a value leaves a gap)."""
    long = frame.melt("trade_date", y, var_name="series", value_name="value").dropna()
    long["series"] = long["series"].map(names or {}).fillna(long["series"])
    legend = alt.Legend(orient="top", title=None) if len(y) > 1 else None
    return (alt.Chart(long, title=title).mark_line(point=len(frame) < 15)
            .encode(x=alt.X("yearmonthdate(trade_date):T", title=None,
                            axis=alt.Axis(format="%b %d", tickCount="day")),
                    y=alt.Y("value:Q", title=y_title, scale=alt.Scale(reverse=reverse,
                                                                      zero=False)),
                    color=alt.Color("series:N", legend=legend),
                    tooltip=["trade_date:T", "series:N", "value:Q"]))


SERIES = {"close_usd": "close", "ma_7d_usd": "7-day average", "ma_30d_usd": "30-day average",
          "volatility_7d": "7 days", "volatility_30d": "30 days",
          "market_cap_rank": "market-cap rank", "market_cap_bn": "total market cap"}


settings = get_settings()
st.title("Lakehouse Lab: gold")
try:
    gold = data.connect(*_gold_tables(data.snapshot_key(settings)))
except LabError as exc:
    st.error(f"{exc.problem} Fix: {exc.fix}")
    st.stop()

days = data.trade_days(gold)
if not days:
    st.warning("Gold has no days yet. Fix: run `lab run` for some dates, then reload.")
    st.stop()
day = st.sidebar.selectbox("Trade day (UTC)", days, index=0, format_func=str, key="day")

market_tab, asset_tab, movers_tab, fresh_tab = st.tabs(
    ["Market", "Asset", "Top movers", "Freshness and quality"])

with market_tab:
    m = data.market(gold, day)
    cols = st.columns(4)
    cols[0].metric("Market cap", data.usd(m.market_cap_usd),
                   data.pct(m.market_cap_change) if m.market_cap_change is not None else None)
    cols[1].metric("24h volume", data.usd(m.volume_usd_24h))
    cols[2].metric("Assets", f"{m.assets}")
    cols[3].metric("Median daily return", data.pct(m.median_return))
    st.caption(f"{day}: {m.leader} leads by market cap.")
    history = data.market_history(gold, day).assign(
        market_cap_bn=lambda f: f.market_cap_usd / 1e9)
    st.altair_chart(_line(history, ["market_cap_bn"], "Total market cap", "USD billions",
                          names=SERIES),
                    width="stretch")
    st.subheader(f"Top 10 by market cap on {day}")
    top = data.leaders(gold, day)
    st.table(pd.DataFrame({
        "rank": top["rank"], "symbol": top["symbol"], "name": top["name"],
        "close": top["close_usd"].map(data.usd), "day": top["daily_return"].map(data.pct),
        "rank change": top["rank_change"].map(data.signed),
        "market cap": top["market_cap_usd"].map(data.usd),
    }).set_index("rank"))

with asset_tab:
    listing = data.assets(gold)
    labels = {row.asset_id: f"{row.symbol} · {row.name}" for row in listing.itertuples()}
    asset_id = str(st.selectbox("Asset", list(labels), format_func=lambda a: labels[a],
                                key="asset"))
    one = data.asset_history(gold, asset_id, day)
    if one.empty:
        st.info(f"{labels[asset_id]} has no rows up to {day}.")
    else:
        last = one.iloc[-1]
        cols = st.columns(4)
        cols[0].metric("Close", data.usd(last.close_usd), data.pct(last.daily_return))
        cols[1].metric("7-day average", data.usd(last.ma_7d_usd))
        cols[2].metric("30-day volatility", data.pct(last.volatility_30d).lstrip("+"))
        cols[3].metric("Market-cap rank", "n/a" if pd.isna(last.market_cap_rank)
                       else f"#{int(last.market_cap_rank)}")
        st.altair_chart(_line(one, ["close_usd", "ma_7d_usd", "ma_30d_usd"],
                              "Close and 7/30-day moving averages", "USD",
                              names=SERIES),
                        width="stretch")
        left, right = st.columns(2)
        left.altair_chart(_line(one, ["volatility_7d", "volatility_30d"],
                                "Volatility (std. dev. of daily returns)", "volatility",
                                names=SERIES),
                          width="stretch")
        right.altair_chart(_line(one, ["market_cap_rank"], "Market-cap rank", "rank",
                                 reverse=True, names=SERIES), width="stretch")

with movers_tab:
    movers = data.top_movers(gold, day)
    st.subheader(f"Top movers on {day}")
    if movers.empty:
        st.info("No top movers: the day before is missing, so no returns.")
    else:
        st.table(pd.DataFrame({
            "symbol": movers["symbol"], "name": movers["name"], "move": movers["move"],
            "daily return": movers["daily_return"].map(data.pct),
            "market-cap rank": movers["market_cap_rank"],
        }).set_index("symbol"))
    ranks = data.rank_history(gold, day).dropna()
    st.altair_chart(
        alt.Chart(ranks, title="Market-cap rank of today's top 10").mark_line(point=True)
        .encode(x=alt.X("yearmonthdate(trade_date):T", title=None,
                        axis=alt.Axis(format="%b %d", tickCount="day")),
                y=alt.Y("market_cap_rank:Q", title="rank", scale=alt.Scale(reverse=True)),
                color="symbol:N", tooltip=["trade_date:T", "symbol:N", "market_cap_rank:Q"]),
        width="stretch")

with fresh_tab:
    fresh = data.freshness(gold)
    run = data.last_run(settings)
    left, middle, right = st.columns(3)
    left.metric("Latest trade day", str(fresh.latest_day))
    middle.metric("Days in gold", f"{fresh.days}")
    right.metric("Last quality verdict", run.verdict if run else "NOT RUN")
    if run is None:
        st.info("No run yet under this LAB_HOME: `lab run` writes runs/<dates>/<run_id>/.")
    else:
        show = st.error if run.verdict == "BLOCKED" else st.success
        show(f"Run {run.run_id} ({run.dates}): {run.verdict}. {run.quality}")
        if run.steps:
            st.caption("Steps: " + ", ".join(run.steps))
        st.caption(f"Run folder: {run.folder}")
    st.caption(f"Gold of LAB_HOME {settings.lab_home}")
    st.table(pd.DataFrame({
        "table": [t.name for t in fresh.tables],
        "rows": [t.rows for t in fresh.tables],
        "last commit (UTC)": [t.committed_at.strftime("%Y-%m-%d %H:%M:%S") if t.committed_at
                              else "never" for t in fresh.tables],
        "snapshot": [str(t.snapshot_id) for t in fresh.tables],
    }).set_index("table"))
