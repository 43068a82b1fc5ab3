SELECT p.name, count(r.stars) AS n, avg(r.stars) FROM product p LEFT JOIN review r ON r.product_id = p.object_id .object_id GROUP BY p.name HAVING count(*) >= 1 ORDER BY 2 DESC
