-- A day's open, close and average lie between its low and its high. Returns the rows that do not.
select trade_date, asset_id, open_usd, high_usd, low_usd, close_usd, avg_usd
from {{ ref('fct_asset_daily') }}
where low_usd > high_usd
   or open_usd not between low_usd and high_usd
   or close_usd not between low_usd and high_usd
   or avg_usd not between low_usd and high_usd
