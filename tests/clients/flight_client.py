"""A program's view of `hb serve --flight-port`, through Python's ADBC Flight SQL
driver (adbc-driver-flightsql + pyarrow).

    python3 flight_client.py URI USER PASSWORD
    python3 flight_client.py tls HOST:PORT CA_FILE   grpc+tls with the CA, then plaintext to the same port
    python3 flight_client.py readonly URI USER PASSWORD  a read-only user reads and cannot write

Prints one JSON report as its last line; the Rust test asserts on it.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa


def connect(uri, user, password):
    return flight_sql.connect(uri, db_kwargs={"username": user, "password": password}, autocommit=True)


def tls(address, ca_file):
    """A TLS port answers over TLS, and a plaintext client gets nothing from it."""
    import adbc_driver_flightsql as flight

    with open(ca_file) as f:
        ca = f.read()
    report = {}
    with flight_sql.connect(f"grpc+tls://{address}", db_kwargs={flight.DatabaseOptions.TLS_ROOT_CERTS.value: ca}) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM doc")
            report["tls_count"] = cur.fetchone()[0]
    try:
        with flight_sql.connect(f"grpc://{address}") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) AS n FROM doc")
                report["plaintext"] = cur.fetchone()[0]
    except Exception as e:
        report["plaintext"] = "refused: " + str(e)[:200]
    print(json.dumps(report))


def readonly(uri, user, password):
    report = {}
    with connect(uri, user, password) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM doc")
            report["count"] = cur.fetchone()[0]
            for name, sql in [("insert", "INSERT INTO doc (name, title) VALUES ('x', 'x')"), ("delete", "DELETE FROM doc")]:
                try:
                    cur.execute(sql)
                    report[name] = "accepted"
                except Exception as e:
                    report[name] = str(e)[:300]
            try:
                cur.adbc_ingest("doc", pa.table({"name": ["y"], "title": ["y"]}), mode="append")
                report["ingest"] = "accepted"
            except Exception as e:
                report["ingest"] = str(e)[:300]
            cur.execute("SELECT count(*) FROM doc")
            report["count_after"] = cur.fetchone()[0]
    print(json.dumps(report))


def main():
    if sys.argv[1] == "tls":
        return tls(sys.argv[2], sys.argv[3])
    if sys.argv[1] == "readonly":
        return readonly(sys.argv[2], sys.argv[3], sys.argv[4])
    uri, user, password = sys.argv[1:4]
    report = {}
    with connect(uri, user, password) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT name, title, qty, emb, at FROM doc ORDER BY qty")
            table = cur.fetch_arrow_table()
            report["types"] = {f.name: str(f.type) for f in table.schema}
            report["rows"] = table.to_pylist()
            for row in report["rows"]:
                row["at"] = row["at"].isoformat() if row["at"] is not None else None

            cur.execute("SELECT name FROM doc WHERE qty > $1 AND title LIKE $2 ORDER BY name", parameters=(1, "%o%"))
            report["prepared"] = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT name FROM doc WHERE qty > $1 AND title LIKE $2 ORDER BY name", parameters=(2, "%"))
            report["prepared_again"] = [r[0] for r in cur.fetchall()]

            cur.execute("INSERT INTO doc (name, title, qty) VALUES ('d4', 'inserted over Flight', 4)")
            report["insert_result"] = cur.fetchall()
            ingest = pa.table({"name": ["d5", "d6"], "title": ["ingested", "ingested"], "qty": pa.array([5, 6], pa.int64())})
            report["ingested"] = cur.adbc_ingest("doc", ingest, mode="append")
            cur.execute("SELECT count(*) AS n, sum(qty) AS total FROM doc")
            report["after_writes"] = list(cur.fetchone())

        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {}
        for catalog in objects:
            for schema in catalog["catalog_db_schemas"] or []:
                for t in schema["db_schema_tables"] or []:
                    tables[t["table_name"]] = {
                        "catalog": catalog["catalog_name"],
                        "schema": schema["db_schema_name"],
                        "type": t["table_type"],
                        "columns": [c["column_name"] for c in (t["table_columns"] or [])],
                    }
        report["objects"] = tables
        report["table_types"] = sorted(conn.adbc_get_table_types())

    try:
        with connect(uri, user, password + "-wrong") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        report["wrong_password"] = "accepted"
    except Exception as e:  # the driver's error type differs by version
        report["wrong_password"] = str(e)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
