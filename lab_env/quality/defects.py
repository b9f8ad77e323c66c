"""Planted defects: copies of a clean frame with one known thing wrong (lesson 06 and checks).

Each function takes a clean frame (from :mod:`lab_env.quality.frames`) and returns a copy with
the defect, leaving the input alone. The rows it changed come first, so ``.head()`` shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab_env.errors import LabError

if TYPE_CHECKING:
    import pandas as pd


def _need_rows(frame: pd.DataFrame, what: str) -> None:
    if frame.empty:
        raise LabError(f"The clean {what} frame is empty: there is nothing to plant a defect in.",
                       "run 03_silver and 04_gold for these dates first.")


def negative_price(prices: pd.DataFrame) -> pd.DataFrame:
    """silver.asset_prices with one price turned negative (a sign error upstream)."""
    import pandas as pd

    _need_rows(prices, "silver.asset_prices")
    bad = prices.iloc[[len(prices) // 2]].copy()
    bad["price_usd"] = -bad["price_usd"]
    return pd.concat([bad, prices.drop(bad.index)], ignore_index=True)


def null_price(prices: pd.DataFrame) -> pd.DataFrame:
    """silver.asset_prices with one price missing."""
    import pandas as pd

    _need_rows(prices, "silver.asset_prices")
    bad = prices.iloc[[0]].copy()
    bad["price_usd"] = None
    return pd.concat([bad, prices.drop(bad.index)], ignore_index=True)


def duplicate_fact(facts: pd.DataFrame) -> pd.DataFrame:
    """gold.fct_asset_daily with one fact written twice (a retried append)."""
    import pandas as pd

    _need_rows(facts, "gold.fct_asset_daily")
    return pd.concat([facts.iloc[[0]], facts], ignore_index=True)


def orphan_fact(facts: pd.DataFrame) -> pd.DataFrame:
    """gold.fct_asset_daily with a fact for an asset the dimension has never heard of."""
    import pandas as pd

    _need_rows(facts, "gold.fct_asset_daily")
    ghost = facts.iloc[[0]].copy()
    ghost["asset_id"], ghost["symbol"] = "ghostcoin", "GHOST"
    return pd.concat([ghost, facts], ignore_index=True)


def stale_facts(facts: pd.DataFrame) -> pd.DataFrame:
    """gold.fct_asset_daily one day behind: the newest day never arrived (the feed stopped)."""
    import pandas as pd

    _need_rows(facts, "gold.fct_asset_daily")
    stale = facts.copy()
    day = pd.to_datetime(stale["trade_date"]) - pd.Timedelta(days=1)
    stale["trade_date"] = day.dt.strftime("%Y-%m-%d")
    return stale


def missing_symbol(facts: pd.DataFrame) -> pd.DataFrame:
    """gold.fct_asset_daily with one fact whose denormalised symbol did not arrive."""
    import pandas as pd

    _need_rows(facts, "gold.fct_asset_daily")
    bad = facts.iloc[[0]].copy()
    bad["symbol"] = None
    return pd.concat([bad, facts.drop(bad.index)], ignore_index=True)
