{#-
    Exact decimal averages, digit for digit the same as Spark's (sql/gold/macros.sql explains):
    DuckDB divides DECIMALs in DOUBLE; Spark divides a DECIMAL sum by a count in DECIMAL and
    rounds half up. Dividing the unscaled 128-bit integers instead gives Spark's digits.
-#}
{% macro unscaled(x) -%}
    cast(replace(cast({{ x }} as varchar), '.', '') as hugeint)
{%- endmacro %}

{% macro price_avg(total, n) -%}
    {#- PRICE = DECIMAL(38, 24), as in silver: round half up in steps of 10^-24. -#}
    (cast(sign({{ unscaled(total) }}) * ((abs({{ unscaled(total) }}) * 2 + ({{ n }})) // (2 * ({{ n }}))) as decimal(38, 0))
     * cast(0.000000000000000000000001 as decimal(38, 24)))
{%- endmacro %}
