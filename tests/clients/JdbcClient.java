import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * pgJDBC against `hb serve`: DatabaseMetaData.getTables/getColumns/getSchemas
 * (with descriptions as REMARKS) and a
 * prepared statement executed often enough to become a server-side one.
 *
 * Usage: java -cp /usr/share/java/postgresql.jar JdbcClient.java PORT DATABASE
 * Exits non-zero with the failing check on stderr; prints "ok" on success.
 */
public class JdbcClient {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("check failed: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1] + "?user=postgres";
        try (Connection c = DriverManager.getConnection(url)) {
            DatabaseMetaData md = c.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            check(tables.contains("product") && tables.contains("review"), "getTables: " + tables);

            Map<String, String> columns = new HashMap<>();
            try (ResultSet rs = md.getColumns(null, null, "product", "%")) {
                while (rs.next()) {
                    columns.put(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"));
                }
            }
            check(columns.containsKey("price") && columns.containsKey("qty") && columns.containsKey("title"),
                    "getColumns: " + columns);
            check("float8".equals(columns.get("price")) && "int8".equals(columns.get("qty")), "column types: " + columns);

            // Descriptions (entity and field `desc`) arrive as REMARKS.
            String noteRemarks = null;
            try (ResultSet rs = md.getTables(null, "public", "note", new String[] {"TABLE"})) {
                check(rs.next(), "getTables finds note");
                noteRemarks = rs.getString("REMARKS");
            }
            check("Notes taken in meetings".equals(noteRemarks), "table REMARKS: " + noteRemarks);
            Map<String, String> remarks = new HashMap<>();
            try (ResultSet rs = md.getColumns(null, "public", "note", "%")) {
                while (rs.next()) {
                    remarks.put(rs.getString("COLUMN_NAME"), rs.getString("REMARKS"));
                }
            }
            check("What was said".equals(remarks.get("body")) && remarks.containsKey("stars") && remarks.get("stars") == null,
                    "column REMARKS: " + remarks);
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) {
                    schemas.add(rs.getString("TABLE_SCHEM"));
                }
            }
            check(schemas.contains("public"), "getSchemas: " + schemas);

            // Primary keys as Hibernate and schema tools read them (pg_index, _pg_expandarray).
            List<String> keys = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "product")) {
                while (rs.next()) {
                    keys.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("KEY_SEQ") + ":" + rs.getString("PK_NAME"));
                }
            }
            check(keys.equals(List.of("object_id:1:product_pkey")), "getPrimaryKeys: " + keys);
            List<String> indexes = new ArrayList<>();
            try (ResultSet rs = md.getIndexInfo(null, "public", "product", false, false)) {
                while (rs.next()) {
                    indexes.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME") + ":" + rs.getInt("ORDINAL_POSITION")
                            + ":" + rs.getBoolean("NON_UNIQUE") + ":" + rs.getString("ASC_OR_DESC"));
                }
            }
            check(indexes.contains("product_pkey:object_id:1:false:A"), "getIndexInfo: " + indexes);

            // Past prepareThreshold (5) pgJDBC switches to a named server-side statement.
            try (PreparedStatement ps = c.prepareStatement("SELECT name, qty FROM product WHERE price > ? ORDER BY name")) {
                for (int i = 0; i < 8; i++) {
                    ps.setDouble(1, 15.0);
                    List<String> got = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            got.add(rs.getString(1) + ":" + (rs.getObject(2) == null ? "null" : rs.getLong(2)));
                        }
                    }
                    check(got.equals(List.of("beta:2", "delta:null")), "prepared run " + i + ": " + got);
                }
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO product (name, price) VALUES (?, ?)")) {
                ps.setString(1, "from jdbc");
                ps.setDouble(2, 3.5);
                check(ps.executeUpdate() == 1, "insert count");
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT price FROM product WHERE name = ?")) {
                ps.setString(1, "from jdbc");
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next() && rs.getDouble(1) == 3.5, "inserted row reads back");
                }
            }

            // Autocommit off: a block. A count prepared (server-side, past the
            // threshold) before the block sees the block's row inside it only.
            try (PreparedStatement count = c.prepareStatement("SELECT count(*) FROM product WHERE name = ?")) {
                for (int i = 0; i < 6; i++) {
                    count.setString(1, "jdbc block");
                    try (ResultSet rs = count.executeQuery()) {
                        check(rs.next() && rs.getLong(1) == 0, "before the block");
                    }
                }
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO product (name, price) VALUES (?, ?)")) {
                    ps.setString(1, "jdbc block");
                    ps.setDouble(2, 1.0);
                    check(ps.executeUpdate() == 1, "insert in a block");
                }
                try (ResultSet rs = count.executeQuery()) {
                    check(rs.next() && rs.getLong(1) == 1, "the block reads its own row");
                }
                c.rollback();
                try (ResultSet rs = count.executeQuery()) {
                    check(rs.next() && rs.getLong(1) == 0, "rolled back");
                }
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO product (name, price) VALUES (?, ?)")) {
                    ps.setString(1, "jdbc committed");
                    ps.setDouble(2, 2.0);
                    ps.executeUpdate();
                }
                c.commit();
                c.setAutoCommit(true);
            }
            // uuid columns: setObject(UUID) binds a uuid (pgJDBC sends it in
            // binary), getObject gives a java.util.UUID, a prepared lookup by
            // key finds the row each time (past the server-side switch).
            try (var st = c.createStatement()) {
                st.execute("CREATE TABLE gadget (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), label text)");
            }
            UUID given = UUID.fromString("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO gadget (id, label) VALUES (?, ?)")) {
                ps.setObject(1, given);
                ps.setString(2, "given");
                check(ps.executeUpdate() == 1, "uuid insert count");
            }
            UUID made;
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO gadget (label) VALUES (?) RETURNING id")) {
                ps.setString(1, "made");
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "RETURNING id gives a row");
                    Object id = rs.getObject(1);
                    check(id instanceof UUID && !id.equals(given), "RETURNING id is a UUID: " + id);
                    made = (UUID) id;
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT id, label FROM gadget WHERE id = ?")) {
                for (int i = 0; i < 7; i++) {
                    ps.setObject(1, i % 2 == 0 ? given : made);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "lookup " + i + " finds its row");
                        check(rs.getObject(1).equals(i % 2 == 0 ? given : made), "lookup " + i + " id: " + rs.getObject(1));
                        check(rs.getString(2).equals(i % 2 == 0 ? "given" : "made"), "lookup " + i + " label: " + rs.getString(2));
                        check(!rs.next(), "lookup " + i + " finds one row");
                    }
                }
            }
            try (ResultSet rs = md.getColumns(null, null, "gadget", "id")) {
                check(rs.next() && "uuid".equals(rs.getString("TYPE_NAME")), "getColumns says uuid");
            }
        }
        System.out.println("ok");
    }
}
