-- gold.dim_asset. Grain: one row per asset (its current attributes).
-- Answers: what is this asset called, since when do we know it, how big can it get?
SELECT
    asset_id,
    symbol,
    name,
    explorer,
    max_supply,
    rank AS current_rank,
    first_seen,
    last_seen
FROM silver_assets
