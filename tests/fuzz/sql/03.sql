WITH t AS (SELECT name, coalesce(price, 0) * 2 AS d FROM product) SELECT CASE WHEN d > 30 THEN 'big' ELSE 'small' END, d FROM t UNION ALL SELECT 'x', 1.5
