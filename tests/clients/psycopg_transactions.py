"""Transaction blocks as psycopg 3 runs them (autocommit off, its default):
the status byte after every step, rollback and commit, a failed statement,
nested transactions (savepoints), and a connection closed inside a block.
Usage: psycopg_transactions.py PORT DBNAME"""
import sys

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus as TS

port, db = int(sys.argv[1]), sys.argv[2]
dsn = f"host=127.0.0.1 port={port} user=postgres dbname={db}"


def count(conn):
    return conn.execute("SELECT count(*) FROM ledger").fetchone()[0]


with psycopg.connect(dsn, autocommit=True) as setup:
    setup.execute("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
    setup.execute("INSERT INTO ledger VALUES (1, 10), (2, 20)")

conn = psycopg.connect(dsn)  # autocommit off
other = psycopg.connect(dsn, autocommit=True)
assert conn.info.transaction_status == TS.IDLE

conn.execute("DELETE FROM ledger")
assert conn.info.transaction_status == TS.INTRANS, conn.info.transaction_status
assert count(conn) == 0
assert count(other) == 2, "another session does not see the block"
conn.rollback()
assert conn.info.transaction_status == TS.IDLE
assert count(other) == 2, "ROLLBACK kept the rows"
conn.rollback()

conn.execute("INSERT INTO ledger VALUES (%s, %s)", (3, 30))
assert count(conn) == 3
conn.commit()
assert count(other) == 3, "COMMIT kept the row"
conn.rollback()

# A failed statement: every later one gets 25P02, and COMMIT rolls back.
conn.execute("UPDATE ledger SET amount = 0 WHERE id = 1")
try:
    conn.execute("INSERT INTO ledger VALUES (1, 99)")
    raise AssertionError("duplicate key accepted")
except errors.UniqueViolation:
    pass
assert conn.info.transaction_status == TS.INERROR, conn.info.transaction_status
try:
    conn.execute("SELECT 1")
    raise AssertionError("statement ran in a failed block")
except errors.InFailedSqlTransaction:
    pass
conn.commit()  # answered ROLLBACK
assert conn.info.transaction_status == TS.IDLE
assert other.execute("SELECT amount FROM ledger WHERE id = 1").fetchone()[0] == 10

# Nested transactions are savepoints: the inner block's failure undoes only it.
with conn.transaction():
    conn.execute("UPDATE ledger SET amount = 11 WHERE id = 1")
    try:
        with conn.transaction():
            conn.execute("UPDATE ledger SET amount = 22 WHERE id = 2")
            conn.execute("INSERT INTO ledger VALUES (2, 0)")
    except errors.UniqueViolation:
        pass
    assert conn.info.transaction_status == TS.INTRANS, conn.info.transaction_status
    assert conn.execute("SELECT amount FROM ledger WHERE id = 2").fetchone()[0] == 20
assert [tuple(r) for r in other.execute("SELECT id, amount FROM ledger ORDER BY id")] == [(1, 11), (2, 20), (3, 30)]
conn.rollback()

# Closed inside a block: nothing of it stays, and its rows are free again.
conn.execute("DELETE FROM ledger WHERE id = 3")
conn.close()
assert count(other) == 3
other.execute("UPDATE ledger SET amount = 33 WHERE id = 3")
assert other.execute("SELECT amount FROM ledger WHERE id = 3").fetchone()[0] == 33
print("ok")
