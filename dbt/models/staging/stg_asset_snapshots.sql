-- One asset in one daily /assets snapshot: the day's volume and market cap.
select
    asset_id,
    snapshot_date,
    snapshot_at,
    rank as snapshot_rank,
    volume_usd_24h,
    market_cap_usd
from {{ source('silver', 'asset_snapshots') }}
