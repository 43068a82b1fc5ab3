"""psycopg 3 (with pgvector-python's types), SQLAlchemy's inspector and
pandas.read_sql against `hb serve`.

Usage: python3 python_client.py PORT DATABASE ALPHA_OBJECT_ID
Exits non-zero with the failing check on stderr; prints "ok" on success.
"""
import sys
import uuid

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from pgvector import Vector
from pgvector.psycopg import register_vector

port, db, alpha = sys.argv[1], sys.argv[2], sys.argv[3]

with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname={db}") as conn:
    # Server-side parameters of several types (extended protocol).
    rows = conn.execute("SELECT name, price, qty FROM product WHERE price > %s ORDER BY name", (15.0,)).fetchall()
    assert rows == [("beta", 20.0, 2), ("delta", 40.0, None)], rows
    row = conn.execute("SELECT name, active FROM product WHERE object_id = %s", (alpha,)).fetchone()
    assert row == ("alpha", True), row
    rows = conn.execute("SELECT name FROM product WHERE qty = %s AND active = %s", (1, True)).fetchall()
    assert rows == [("alpha",)], rows
    # Full-text search with the query and top_k as server-side parameters.
    rows = conn.execute(
        "SELECT p.name, s.score FROM search('product', 'title', %s, %s) s JOIN product p USING (object_id) "
        "ORDER BY s.score DESC, p.name", ("desk chair -beta", 5)).fetchall()
    assert [r[0] for r in rows] == ["alpha"] and rows[0][1] > 0, rows
    # Binary results.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT name, qty FROM product WHERE name = %s", ("beta",))
        assert cur.fetchall() == [("beta", 2)]
    conn.execute("INSERT INTO product (name, price) VALUES (%s, %s)", ("from psycopg", 2.5))
    conn.commit()
    n = conn.execute("SELECT count(*) FROM product").fetchone()[0]
    assert n == 5, n
    # Vectors as bound parameters, in the forms clients send them: pgvector's
    # text '[…]' (its SQLAlchemy type, LangChain), a list of floats, a list of ints.
    conn.execute("CREATE TABLE vdoc (id integer PRIMARY KEY, emb vector(3))")
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (1, "[1, 0, 0]"))
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (2, [0.0, 1.0, 0.0]))
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (3, [0, 0, 1]))
    conn.execute("UPDATE vdoc SET emb = %s WHERE id = %s", ("[0.5,0.5,0]", 2))
    conn.commit()
    rows = conn.execute("SELECT id, emb FROM vdoc ORDER BY id").fetchall()
    assert rows == [(1, [1.0, 0.0, 0.0]), (2, [0.5, 0.5, 0.0]), (3, [0.0, 0.0, 1.0])], rows
    try:
        conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (4, "[1, 0]"))
        raise AssertionError("a vector of the wrong dimension is refused")
    except psycopg.errors.InvalidTextRepresentation as e:
        assert "dimension" in str(e), e
        conn.rollback()
    rows = conn.execute(
        "SELECT v.id FROM near('vdoc', 'emb', %s, 2) n JOIN vdoc v USING (object_id) ORDER BY n.score DESC",
        ("[0.9, 0.1, 0]",)).fetchall()
    assert [r[0] for r in rows] == [1, 2], rows
    # pgvector-python's register_vector finds the vector type; numpy arrays
    # and Vector objects are then sent in pgvector's binary form (and with
    # %t in its text form). Vector columns still read back as float lists.
    register_vector(conn)
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (5, np.array([0.25, 0.5, 1.0])))
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (6, Vector([0.0, 0.0, 2.0])))
    conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %t)", (7, np.array([1.5, 0.25, 0.0])))
    conn.execute("UPDATE vdoc SET emb = %s WHERE id = %s", (np.array([0.0, 0.5, 0.5], dtype=np.float32), 6))
    conn.commit()
    rows = conn.execute("SELECT id, emb FROM vdoc WHERE id >= 5 ORDER BY id").fetchall()
    assert rows == [(5, [0.25, 0.5, 1.0]), (6, [0.0, 0.5, 0.5]), (7, [1.5, 0.25, 0.0])], rows
    try:
        conn.execute("INSERT INTO vdoc (id, emb) VALUES (%s, %s)", (8, np.array([1.0, 2.0])))
        raise AssertionError("a binary vector of the wrong dimension is refused")
    except psycopg.errors.InvalidTextRepresentation as e:
        assert "dimension" in str(e), e
        conn.rollback()
    rows = conn.execute(
        "SELECT v.id FROM near('vdoc', 'emb', %s, 2) n JOIN vdoc v USING (object_id) ORDER BY n.score DESC",
        (np.array([1.5, 0.25, 0.0]),)).fetchall()
    assert [r[0] for r in rows] == [7, 1], rows
    info = psycopg.types.TypeInfo.fetch(conn, "vector")
    assert info.name == "vector" and info.regtype == "vector", info
    # uuid columns: a uuid.UUID bound in text (%t) and binary (%b) format is
    # stored, a uuid column is read back as uuid.UUID in both result formats.
    conn.execute("CREATE TABLE token (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), label text)")
    given = uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
    conn.execute("INSERT INTO token (id, label) VALUES (%t, %s)", (given, "text"))
    conn.execute("INSERT INTO token (id, label) VALUES (%b, %s)", (uuid.UUID(int=7), "binary"))
    made = conn.execute("INSERT INTO token (label) VALUES (%s) RETURNING id", ("made",)).fetchone()[0]
    assert isinstance(made, uuid.UUID) and made not in (given, uuid.UUID(int=7)), made
    conn.commit()
    assert conn.execute("SELECT label FROM token WHERE id = %t", (given,)).fetchone() == ("text",)
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, label FROM token WHERE id = %b", (uuid.UUID(int=7),))
        assert cur.fetchall() == [(uuid.UUID(int=7), "binary")]
        cur.execute("SELECT id FROM token ORDER BY label")
        assert cur.fetchall() == [(uuid.UUID(int=7),), (made,), (given,)]
    # A str parameter (sent untyped) cast to uuid, in Postgres' braced form:
    # read as text, not as an array; a computed uuid comes back as uuid.UUID.
    braced = "{" + str(given).upper() + "}"
    assert conn.execute("SELECT label FROM token WHERE id = %s::uuid", (braced,)).fetchone() == ("text",)
    assert conn.execute("SELECT %s::uuid", (braced,)).fetchone() == (given,)
    assert isinstance(conn.execute("SELECT gen_random_uuid()").fetchone()[0], uuid.UUID)
    # An error carries its SQLSTATE, and the connection goes on after a rollback.
    try:
        conn.execute("SELECT nope FROM product")
        raise AssertionError("an unknown column is an error")
    except psycopg.errors.UndefinedColumn:
        conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)

engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/{db}")
inspector = sa.inspect(engine)
tables = inspector.get_table_names()
assert {"product", "review", "note"} <= set(tables), tables
columns = {c["name"]: c for c in inspector.get_columns("product")}
assert {"object_id", "name", "title", "price", "qty", "active"} <= set(columns), sorted(columns)
assert isinstance(columns["price"]["type"], sa.Double) and isinstance(columns["qty"]["type"], sa.BigInteger), columns
columns = {c["name"]: c for c in inspector.get_columns("note")}
assert columns["body"]["comment"] == "What was said" and columns["stars"]["comment"] is None, columns
assert inspector.get_table_comment("note") == {"text": "Notes taken in meetings"}, inspector.get_table_comment("note")

df = pd.read_sql("SELECT name, price FROM product ORDER BY name", engine)
assert list(df["name"]) == ["alpha", "beta", "delta", "from psycopg", "gamma"], list(df["name"])
assert df["price"].iloc[0] == 10.0
df = pd.read_sql(sa.text("SELECT name FROM product WHERE qty >= :q ORDER BY name"), engine, params={"q": 2})
assert list(df["name"]) == ["beta", "gamma"], list(df["name"])
print("ok")
