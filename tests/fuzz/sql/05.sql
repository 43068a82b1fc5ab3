UPDATE product SET qty = qty + 1, title = upper(title) WHERE name IN ('alpha', 'beta') AND active IS NOT NULL
