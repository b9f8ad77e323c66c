-- One UTC day of the whole market: size, breadth and leaders. Spark's gold has no such mart.
-- A table rebuilt from fct_asset_daily on every run: a few rows per day, cheaper to rebuild
-- than to reason about incrementally.
with facts as (
    select * from {{ ref('fct_asset_daily') }}
)

select
    trade_date,
    cast(count(*) as integer) as assets,
    sum(market_cap_usd) as total_market_cap_usd,
    sum(volume_usd_24h) as total_volume_usd_24h,
    cast(sum(market_cap_usd) filter (where asset_id = 'bitcoin') as double)
        / cast(sum(market_cap_usd) as double) as bitcoin_dominance,
    cast(count(*) filter (where daily_return > 0) as integer) as advancers,
    cast(count(*) filter (where daily_return < 0) as integer) as decliners,
    arg_max(asset_id, daily_return) filter (where daily_return is not null) as top_gainer_asset_id,
    max(daily_return) as top_gainer_return,
    arg_min(asset_id, daily_return) filter (where daily_return is not null) as top_loser_asset_id,
    min(daily_return) as top_loser_return
from facts
group by trade_date
