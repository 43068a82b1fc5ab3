INSERT INTO product (name, title, price, tags) VALUES ('fz', 'Fuzz', 1.25, ARRAY[ ARRAY[ ARRAY[ ARRAY['a']]]])
