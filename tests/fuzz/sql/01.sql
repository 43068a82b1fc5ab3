SELECT name, price FROM product WHERE price > 5 AND (qty IS NULL OR qty < 3) ORDER BY price DESC LIMIT 2
