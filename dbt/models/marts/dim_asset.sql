-- One asset, with its current attributes: the star's dimension. Small, so rebuilt whole.
select
    asset_id,
    symbol,
    name,
    explorer,
    max_supply,
    current_rank,
    first_seen,
    last_seen
from {{ ref('stg_assets') }}
