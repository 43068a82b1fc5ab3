UPDATE product SET qty = qty + 1 WHERE name IN ('alpha', 'beta') AND active IS NOT NULL NOT NULL NOT NULL NOT NULL
