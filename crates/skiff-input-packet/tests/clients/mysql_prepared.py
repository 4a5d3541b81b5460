# A real MySQL client using the binary protocol (COM_STMT_PREPARE/EXECUTE) for live_db.rs.
# Run by the venv of scripts/ensure-test-deps; exits non-zero when the server misbehaves.
import mysql.connector
c = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", password="", database="test", ssl_disabled=True, use_pure=True)
t = c.cursor()
t.execute("DROP TABLE IF EXISTS skiff_live_prep")
t.execute("CREATE TABLE skiff_live_prep (id INT PRIMARY KEY, name VARCHAR(20))")
p = c.cursor(prepared=True)
p.execute("INSERT INTO skiff_live_prep (id, name) VALUES (?, ?)", (1, "one"))
p.execute("INSERT INTO skiff_live_prep (id, name) VALUES (?, ?)", (2, "two"))
try:
    p.execute("INSERT INTO skiff_live_prep (id, name) VALUES (?, ?)", (1, "dup"))
    raise SystemExit("duplicate insert did not fail")
except mysql.connector.errors.IntegrityError as e:
    assert e.errno == 1062, e
p.execute("SELECT id, name FROM skiff_live_prep WHERE id >= ?", (1,))
assert len(p.fetchall()) == 2
c.commit()
t.execute("DROP TABLE skiff_live_prep")
c.close()
print("ok")
