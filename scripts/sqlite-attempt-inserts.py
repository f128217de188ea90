#!/usr/bin/env python3
"""CPU cost per row of inserting delivery-log rows (attempts) into SQLite, as the writer does:
a real file in WAL mode with synchronous=NORMAL, rows of the real shape (about 700 bytes, with
the logged request headers), committed in groups.

Compares the delivery-log indexes descending (before migration 0004) and ascending (after), and
group sizes. Python's own overhead per row is included and the same in every variant, so read
the differences, not the absolute figures.

    python3 scripts/sqlite-attempt-inserts.py            # 100 000 rows per variant
"""
import os
import tempfile
import time
import uuid

ROWS = int(os.environ.get("ROWS", "100000"))
COLUMNS = (
    "id TEXT PRIMARY KEY, delivery_seq INTEGER NOT NULL, tenant_id TEXT NOT NULL, webhook_id TEXT NOT NULL, "
    "event_ref TEXT NOT NULL, event_type TEXT NOT NULL, format TEXT NOT NULL, attempt_no INTEGER NOT NULL, "
    "success INTEGER NOT NULL, http_status INTEGER, error TEXT, response_ms INTEGER NOT NULL, "
    "request_headers TEXT NOT NULL, dispatched_at INTEGER NOT NULL, response_body BLOB, next_attempt_at INTEGER, "
    "created_at INTEGER NOT NULL"
)
HEADERS = (
    '{"content-type":"application/json","user-agent":"Tocsin-Webhook/0.1.0","x-tocsin-event":"alert.created",'
    '"x-tocsin-delivery":"%s","x-tocsin-timestamp":"2026-11-23T15:00:00Z","x-tocsin-webhook-id":"%s",'
    '"x-tocsin-signature":"sha256=%s","webhook-id":"bench-1","webhook-timestamp":"1763900000",'
    '"webhook-signature":"v1,%s"}'
)


def rows():
    webhook, start = str(uuid.uuid4()), 1_763_900_000_000
    out = []
    for i in range(ROWS):
        ms = start + i // 10
        # A UUIDv7-shaped id: time-ordered like the service's.
        uid = "%08x-%04x-7" % (ms >> 16, ms & 0xFFFF) + str(uuid.uuid4())[15:]
        out.append((uid, i, "default", webhook, f"bench-{i}", "alert.created", "json", 1, 1, 200, None, 3,
                    HEADERS % (uid, webhook, "a" * 64, "b" * 44), ms, b'{"ok":true}', None, ms))
    return out


def run(name, order, group, data):
    with tempfile.TemporaryDirectory() as d:
        import sqlite3
        c = sqlite3.connect(os.path.join(d, "a.db"), isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"CREATE TABLE attempts ({COLUMNS})")
        c.execute(f"CREATE INDEX attempts_webhook_newest ON attempts (tenant_id, webhook_id, created_at {order})")
        c.execute(f"CREATE INDEX attempts_tenant_newest ON attempts (tenant_id, created_at {order})")
        sql = f"INSERT INTO attempts VALUES ({', '.join('?' * 17)})"
        started = time.process_time()
        for g in range(0, len(data), group):
            c.execute("BEGIN IMMEDIATE")
            c.executemany(sql, data[g:g + group])
            c.execute("COMMIT")
        cpu = time.process_time() - started
        c.close()
    print(f"{name:40s} {cpu * 1e6 / len(data):6.1f} µs CPU per row")


data = rows()
for _ in range(2):
    run("descending indexes, 20 rows per commit", "DESC", 20, data)
    run("ascending indexes, 20 rows per commit", "", 20, data)
    run("ascending indexes, 50 rows per commit", "", 50, data)
