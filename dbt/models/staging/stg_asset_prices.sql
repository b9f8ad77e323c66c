-- One asset at one observation time, from silver.asset_prices (the read window only, when the
-- run is incremental: the source's row_filter). Adds the UTC trade date every mart groups by.
select
    asset_id,
    observed_at,
    cast(observed_at as date) as trade_date,
    price_usd,
    circulating_supply,
    ingest_date
from {{ source('silver', 'asset_prices') }}
