-- mart_market_daily adds up fct_asset_daily: same days, same asset counts, same market cap.
with facts as (
    select trade_date, count(*) as assets, sum(market_cap_usd) as market_cap
    from {{ ref('fct_asset_daily') }}
    group by trade_date
)
select coalesce(f.trade_date, m.trade_date) as trade_date, f.assets, m.assets as mart_assets
from facts as f
full join {{ ref('mart_market_daily') }} as m on m.trade_date = f.trade_date
where f.trade_date is null
   or m.trade_date is null
   or f.assets != m.assets
   or f.market_cap is distinct from m.total_market_cap_usd
