{#-
    One asset on one UTC day: the star's fact table, the same rows as Spark's gold.fct_asset_daily.

    Incremental, by gold's rule (docs/dbt.md): a run rewrites the affected days
    var('write_from') .. var('write_to'), which `lab dbt build` computes from silver (the run's
    dates, widened back to the earliest day silver got late points for). The sources' row filters
    read those days and their lookback only; delete+insert replaces the rows of the written
    (asset_id, trade_date) keys and leaves every other day as it is. Without the vars, or on the
    first run and with --full-refresh, every day silver has is built.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['asset_id', 'trade_date'],
    on_schema_change='fail',
) }}

with daily as (
    select
        asset_id,
        trade_date,
        arg_min(price_usd, observed_at) as open_usd,
        max(price_usd) as high_usd,
        min(price_usd) as low_usd,
        arg_max(price_usd, observed_at) as close_usd,
        {{ price_avg('sum(price_usd)', 'count(price_usd)') }} as avg_usd,
        cast(count(*) as integer) as observations
    from {{ ref('stg_asset_prices') }}
    group by asset_id, trade_date
),

facts as (
    select
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
        -- the close exactly one day before (a missing day gives null, not a two-day return)
        cast(d.close_usd as double) / cast(first(d.close_usd) over previous_day as double) - 1
            as daily_return
    from daily as d
    left join {{ ref('stg_asset_snapshots') }} as s
        on s.asset_id = d.asset_id and s.snapshot_date = d.trade_date
    left join {{ ref('stg_assets') }} as a
        on a.asset_id = d.asset_id
    window previous_day as (
        partition by d.asset_id
        order by d.trade_date - date '1970-01-01'
        range between 1 preceding and 1 preceding
    )
)

select * from facts
{% if is_incremental() and var('write_from') %}
-- the lookback days were read for the windows only: write the affected days
where trade_date between date '{{ var("write_from") }}' and date '{{ var("write_to") }}'
{% endif %}
