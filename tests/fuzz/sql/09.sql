UPDATE product SET qty = qty + 1, title = upper(title) WHERE name IN ('alpha', 'beta') AND active BETWEEN '2024-01-01' AND '2025-01-01'
