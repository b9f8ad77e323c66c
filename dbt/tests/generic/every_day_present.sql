{#- No calendar day is missing between the first and the last day of a date column. -#}
{% test every_day_present(model, column_name) %}
with days as (
    select distinct {{ column_name }} as day from {{ model }}
),
expected as (
    select cast(unnest(generate_series(min(day), max(day), interval 1 day)) as date) as day
    from days
)
select day from expected
except
select day from days
{% endtest %}
