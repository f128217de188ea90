#!/usr/bin/env python3
"""Which pages each SQLite commit appends to the write-ahead log, by table and index: what a
single-event publish costs the writer (every page a commit touched is written whole).

Starts a real `tocsin serve` on a fresh data directory and a `tocsin listen` sink (loopback
only), creates one webhook, publishes EVENTS events one per request (a keep-alive connection,
PAUSE_MS apart, so that each publish and each attempt record commits on its own), copies the
database and its WAL, and reads the WAL's frames since its last restart: the page of each frame,
grouped into commits, named through SQLite's `dbstat` table.

    cargo build --release && python3 scripts/sqlite-wal-pages.py       # TOCSIN=path/to/tocsin
"""
import collections
import http.client
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time
import uuid

TOCSIN = os.environ.get("TOCSIN", "target/release/tocsin")
EVENTS = int(os.environ.get("EVENTS", "300"))
PAUSE_MS = float(os.environ.get("PAUSE_MS", "3"))
SERVER_PORT, SINK_PORT = 9410, 9411
TOKEN = "tsn_wal_pages_admin_token_0000000000000000"


def wait_for(port):
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def frames_since_restart(wal):
    """The WAL's commits since its last restart: lists of page numbers (frames whose salts
    match the header's; a restart writes new salts and overwrites from the start)."""
    _, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", wal[:32])
    commits, current, off = [], [], 32
    while off + 24 + page_size <= len(wal):
        page, commit, s1, s2, _, _ = struct.unpack(">IIIIII", wal[off : off + 24])
        if (s1, s2) != (salt1, salt2):
            break
        current.append(page)
        if commit:
            commits.append(current)
            current = []
        off += 24 + page_size
    return page_size, commits


def main():
    work = tempfile.mkdtemp(prefix="tocsin-wal-")
    env = dict(os.environ, TOCSIN_LISTEN=f"127.0.0.1:{SERVER_PORT}", TOCSIN_DATA_DIR=f"{work}/data",
               TOCSIN_ADMIN_TOKEN=TOKEN, TOCSIN_MASTER_KEY="b" * 64, TOCSIN_ALLOW_DESTINATIONS="127.0.0.0/8",
               TOCSIN_LOG="warn")
    sink = subprocess.Popen([TOCSIN, "listen", "--port", str(SINK_PORT), "--quiet"])
    server = subprocess.Popen([TOCSIN, "serve"], env=env)
    try:
        wait_for(SINK_PORT)
        wait_for(SERVER_PORT)
        conn = http.client.HTTPConnection("127.0.0.1", SERVER_PORT)

        def call(path, body):
            conn.request("POST", path, json.dumps(body),
                         {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
            if response.status >= 300:
                raise SystemExit(f"POST {path}: {response.status} {text!r}")

        call("/api/v1/webhooks", {"name": "wal", "url": f"http://127.0.0.1:{SINK_PORT}/hook",
                                  "secret": "whsec_" + "a" * 32, "event_types": ["*"]})
        for i in range(EVENTS):
            call("/api/v1/events", {"event": "alert.created", "event_ref": str(uuid.uuid4()),
                                    "data": {"detail": "x" * 900, "i": i}})
            time.sleep(PAUSE_MS / 1000)
        time.sleep(0.3)
        shutil.copy(f"{work}/data/tocsin.db", f"{work}/copy.db")
        shutil.copy(f"{work}/data/tocsin.db-wal", f"{work}/copy.db-wal")
    finally:
        server.terminate()
        sink.terminate()
        server.wait()
        sink.wait()
    page_size, commits = frames_since_restart(open(f"{work}/copy.db-wal", "rb").read())
    names = {}
    with sqlite3.connect(f"file:{work}/copy.db?mode=ro", uri=True) as db:
        for name, page in db.execute("SELECT name, pageno FROM dbstat"):
            names[page] = name
    shutil.rmtree(work)
    print(f"page size {page_size}; {len(commits)} commits, {sum(map(len, commits))} frames")
    print("frames per commit:", dict(sorted(collections.Counter(map(len, commits)).items())))
    touched = collections.Counter(names.get(p, "(a page since freed)") for c in commits for p in set(c))
    print("commits that wrote a page of:")
    for name, n in touched.most_common():
        print(f"  {n:5d}  {name}")


if __name__ == "__main__":
    main()
