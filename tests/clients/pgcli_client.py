"""pgcli's own metadata queries (the ones its completer refreshes on connect)
against `hb serve`, through pgcli's PGExecute on psycopg 3.

Usage: python3 pgcli_client.py PORT DATABASE
Exits non-zero with the failing check on stderr; prints "ok" on success.
"""
import sys

from pgcli.pgexecute import PGExecute

port, db = sys.argv[1], sys.argv[2]
pg = PGExecute(database=db, user="postgres", host="127.0.0.1", port=port)

assert pg.server_version.startswith("15"), pg.server_version
assert "public" in pg.search_path(), pg.search_path()
assert "public" in pg.schemata(), pg.schemata()
assert db in pg.databases(), pg.databases()

tables = set(pg.tables())
assert ("public", "product") in tables and ("public", "note") in tables, sorted(tables)

columns = {(t, c): ty for (s, t, c, ty, *_rest) in pg.table_columns() if s == "public"}
assert columns[("note", "body")] == "text", columns
assert columns[("product", "price")] == "double precision", columns
assert columns[("product", "qty")] == "bigint", columns
assert columns[("product", "active")] == "boolean", columns

# Lists with nothing of ours in them, but that must answer.
assert [v for v in pg.views() if v[0] == "public"] == []
assert list(pg.foreignkeys()) == []
list(pg.datatypes())
functions = {f.func_name for f in pg.functions()}
assert "pg_get_expr" in functions, sorted(functions)[:20]

# A statement as a pgcli user runs it.
[(title, cur, headers, status)] = [r[:4] for r in pg.run("SELECT name FROM product WHERE qty = 2")]
assert headers == ["name"] and list(cur) == [("beta",)], (headers, status)
print("ok")
