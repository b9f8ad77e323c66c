-- gold.asset_rolling. Grain: one asset on one UTC day.
-- Answers: what is the trend (7- and 30-day moving averages), how jumpy is the price
-- (volatility: standard deviation of daily returns), and how did it change week over week?
-- Reads fct_asset_daily (the daily facts of the processed days and their lookback).
WITH numbered AS (
    SELECT *, trade_date - DATE '1970-01-01' AS day_number FROM fct_asset_daily
)
SELECT
    trade_date,
    asset_id,
    symbol,
    close_usd,
    CASE WHEN count(close_usd) OVER days_7 = 7
        THEN price_avg(sum(close_usd) OVER days_7, count(close_usd) OVER days_7) END AS ma_7d_usd,
    CASE WHEN count(close_usd) OVER days_30 = 30
        THEN price_avg(sum(close_usd) OVER days_30, count(close_usd) OVER days_30) END AS ma_30d_usd,
    CASE WHEN count(daily_return) OVER days_7 = 7
        THEN stddev_samp(daily_return) OVER days_7 END AS volatility_7d,
    CASE WHEN count(daily_return) OVER days_30 = 30
        THEN stddev_samp(daily_return) OVER days_30 END AS volatility_30d,
    first(close_usd) OVER week_before AS close_7d_ago_usd,
    CAST(close_usd AS DOUBLE) / CAST(first(close_usd) OVER week_before AS DOUBLE) - 1 AS wow_change
FROM numbered
WINDOW
    days_7 AS (PARTITION BY asset_id ORDER BY day_number RANGE BETWEEN 6 PRECEDING AND CURRENT ROW),
    days_30 AS (PARTITION BY asset_id ORDER BY day_number RANGE BETWEEN 29 PRECEDING AND CURRENT ROW),
    week_before AS (
        PARTITION BY asset_id ORDER BY day_number RANGE BETWEEN 7 PRECEDING AND 7 PRECEDING
    )
