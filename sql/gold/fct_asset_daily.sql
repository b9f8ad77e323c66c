-- gold.fct_asset_daily. Grain: one asset on one UTC day.
-- Answers: how did each asset trade each day (open, high, low, close, average, volume,
-- market cap at close, return on the day before)?
-- Reads silver_asset_prices, silver_asset_snapshots and silver_assets.
WITH daily AS (
    SELECT
        asset_id,
        CAST(observed_at AS DATE) AS trade_date,
        arg_min(price_usd, observed_at) AS open_usd,
        max(price_usd) AS high_usd,
        min(price_usd) AS low_usd,
        arg_max(price_usd, observed_at) AS close_usd,
        price_avg(sum(price_usd), count(price_usd)) AS avg_usd,
        CAST(count(*) AS INTEGER) AS observations
    FROM silver_asset_prices
    GROUP BY asset_id, CAST(observed_at AS DATE)
),
numbered AS (
    SELECT *, trade_date - DATE '1970-01-01' AS day_number FROM daily
)
SELECT
    d.trade_date,
    d.asset_id,
    a.symbol,
    a.name,
    d.open_usd,
    d.high_usd,
    d.low_usd,
    d.close_usd,
    d.avg_usd,
    d.observations,
    s.volume_usd_24h,
    s.market_cap_usd,
    CAST(d.close_usd AS DOUBLE) / CAST(first(d.close_usd) OVER previous_day AS DOUBLE) - 1
        AS daily_return
FROM numbered AS d
LEFT JOIN silver_asset_snapshots AS s
    ON s.asset_id = d.asset_id AND s.snapshot_date = d.trade_date
LEFT JOIN silver_assets AS a
    ON a.asset_id = d.asset_id
WINDOW previous_day AS (
    PARTITION BY d.asset_id ORDER BY d.day_number RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING
)
