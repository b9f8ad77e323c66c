-- Exact decimal averages, digit for digit the same as Spark's.
--
-- DuckDB divides DECIMALs in DOUBLE (and avg(DECIMAL) is a DOUBLE); Spark divides a DECIMAL sum
-- by a count in DECIMAL and rounds half up (away from zero). To get the very same digits, divide
-- the unscaled integers instead, in 128 bits:
--   decimal_avg(total, n, unit) = round_half_up(total / n), in steps of unit (e.g. 10^-24).

-- A DECIMAL as its unscaled integer: 1.500 (DECIMAL(38,3)) -> 1500. DuckDB prints every
-- digit of the scale, so dropping the point gives the integer.
CREATE OR REPLACE TEMP MACRO unscaled(x) AS CAST(replace(CAST(x AS VARCHAR), '.', '') AS HUGEINT);

-- unit: the type's smallest step as a DECIMAL of that type, e.g. PRICE_UNIT below.
CREATE OR REPLACE TEMP MACRO decimal_avg(total, n, unit) AS
    CAST(sign(unscaled(total)) * ((abs(unscaled(total)) * 2 + n) // (2 * n)) AS DECIMAL(38, 0))
    * unit;

-- PRICE = DECIMAL(38, 24), as in silver: unit prices are averaged in that type.
CREATE OR REPLACE TEMP MACRO price_avg(total, n) AS
    decimal_avg(total, n, CAST(0.000000000000000000000001 AS DECIMAL(38, 24)));
