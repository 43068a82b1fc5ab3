INSERT INTO product (name, title, price, tags) VALUES ('fz', 'Fuzz', 1.25, ARRAY['a', 'b']) ON CONFLICT (name) DO UPDATE SET price = excluded.price RETURNING object_id, price
