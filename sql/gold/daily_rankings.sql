-- gold.daily_rankings. Grain: one asset on one UTC day.
-- Answers: who is biggest by market cap each day, who climbed or fell in that ranking, and
-- who moved most (top 3 gainers and losers by daily return)?
-- Reads fct_asset_daily (the daily facts of the processed days and their lookback).
WITH ranked AS (
    SELECT
        trade_date,
        asset_id,
        symbol,
        market_cap_usd,
        daily_return,
        trade_date - DATE '1970-01-01' AS day_number,
        CASE WHEN market_cap_usd IS NOT NULL THEN CAST(row_number() OVER (
            PARTITION BY trade_date ORDER BY market_cap_usd DESC NULLS LAST, asset_id
        ) AS INTEGER) END AS market_cap_rank,
        CASE WHEN daily_return IS NOT NULL THEN CAST(row_number() OVER (
            PARTITION BY trade_date ORDER BY daily_return DESC NULLS LAST, asset_id
        ) AS INTEGER) END AS gainer_rank,
        CASE WHEN daily_return IS NOT NULL THEN CAST(row_number() OVER (
            PARTITION BY trade_date ORDER BY daily_return ASC NULLS LAST, asset_id
        ) AS INTEGER) END AS loser_rank
    FROM fct_asset_daily
)
SELECT
    trade_date,
    asset_id,
    symbol,
    market_cap_usd,
    market_cap_rank,
    first(market_cap_rank) OVER (
        PARTITION BY asset_id ORDER BY day_number RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING
    ) - market_cap_rank AS rank_change,
    daily_return,
    gainer_rank,
    loser_rank,
    coalesce(gainer_rank <= 3 OR loser_rank <= 3, false) AS is_top_mover
FROM ranked
