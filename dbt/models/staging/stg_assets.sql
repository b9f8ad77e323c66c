-- One asset with its latest attributes.
select
    asset_id,
    symbol,
    name,
    explorer,
    max_supply,
    rank as current_rank,
    first_seen,
    last_seen
from {{ source('silver', 'assets') }}
