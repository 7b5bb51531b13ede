#!/usr/bin/env python3
"""What one durable SQLite commit of one chat message costs on this machine.

Commits one message at a time, as our server does when messages arrive
slower than a commit takes (about 1,000 a second in the fan-out bench),
into our schema (WAL, synchronous=FULL, no automatic checkpoint), and
prints the wall time, the process's CPU time (user + kernel, which is
where an fsync's cost lands) and the WAL bytes per commit. It also tries
a smaller page size and commits without the `rooms` upsert, the two ways
to write fewer pages per commit.

    python3 crates/bench/scripts/sqlite-commit-cost.py [commits]

Python's sqlite3 module links the system's SQLite, not the copy our
server bundles; the figure that matters, the kernel's cost per fsync, is
the same for both.
"""

import os
import random
import resource
import sqlite3
import sys
import tempfile
import time

SCHEMA = """
CREATE TABLE rooms (name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (
    room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
    user_id TEXT NOT NULL, user_name TEXT NOT NULL, text TEXT NOT NULL,
    ts INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_room_id ON messages (room, id);
"""


def run(commits, page_size, rooms_upsert):
    directory = tempfile.mkdtemp()
    db = sqlite3.connect(os.path.join(directory, "chat.db"), isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.executescript(SCHEMA)
    seqs = {}
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.time()
    for i in range(commits):
        room = f"room-{random.randrange(100)}"
        seq = seqs.get(room, 0) + 1
        seqs[room] = seq
        message_id = f"{i:08d}-{random.random()}"
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "SELECT seq FROM messages WHERE room = ? AND id = ?", (room, message_id)
        ).fetchall()
        db.execute(
            "INSERT INTO messages (room, seq, id, user_id, user_name, text, ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (room, seq, message_id, "u_123456", "bench-user", "x" * 64, 1700000000000),
        )
        if rooms_upsert:
            db.execute(
                "INSERT INTO rooms (name, seq) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                (room, seq),
            )
        db.execute("COMMIT")
    ended, after = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    wal = os.path.getsize(os.path.join(directory, "chat.db-wal"))
    print(
        f"page_size {page_size:5}, rooms upsert {'yes' if rooms_upsert else 'no ':3}:"
        f" {1e6 * (ended - started) / commits:4.0f} µs wall,"
        f" {1e6 * cpu / commits:4.0f} µs CPU,"
        f" {wal / commits:6.0f} WAL bytes per commit"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    for size, upsert in [(4096, True), (1024, True), (4096, False), (1024, False)]:
        run(count, size, upsert)
