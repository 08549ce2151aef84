#!/usr/bin/env python3
"""Creates and updates per second through the gateway on its embedded SQLite store, against a
plain rusqlite loop running the same transactions (bench/sqlite_loop.rs), in one run; then a
durability check: clients create users while the gateway is killed with SIGKILL, and every
create it acknowledged must be in the store.

With --postgres, in the same run: the gateway on a throwaway PostgreSQL cluster (scripts/pg),
one instance and two instances on the one database, against pgbench running the same
transactions (an insert of a user row of the same size; an update of one), and the same kill -9
check.

Started by bench/sqlite, which builds the binaries and installs wrk.
"""

import argparse
import http.client
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared config writer)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 9110

CREATE_LUA = """
counter = 0
wrk.method = "PUT"
wrk.headers["Authorization"] = "Bearer bench-vc-token"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local name = string.format("%s-%%d-%%d", math.random(1, 1000000000), counter)
  local body = '{"userKey":{"username":"' .. name .. '","authenticator":"LOCAL"},%s' ..
    '"firstName":"Ann","lastName":"Smith","email":"' .. name .. '@example.com","enabled":true}'
  return wrk.format(nil, "/user-service/v1/user", nil, body)
end
"""

UPDATE_LUA = """
counter = 0
wrk.method = "PUT"
wrk.headers["Authtoken"] = "QSDK bench-commvault-token"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local id = (counter %% %d) + 1
  local body = '{"fullName":"Ann Smith ' .. counter .. '","description":"Storage and backup operator"}'
  return wrk.format(nil, "/webconsole/api/V4/user/" .. id, nil, body)
end
"""


def config(work, db, name="userbridge"):
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(bench.userbridge_toml(PORT, f'kind = "sqlite"\npath = "{db}"', work))
    return path


def start(binary, cfg):
    env = dict(os.environ, USERBRIDGE_LOG="warn")
    p = subprocess.Popen([binary, "serve", "--config", cfg], env=env)
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=0.5).read()
            return p
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("userbridge did not start")
            time.sleep(0.01)


def wrk(script_text, work, name, seconds, conns):
    script = os.path.join(work, name)
    with open(script, "w") as f:
        f.write(script_text)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{PORT}"],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"not every answer was a success:\n{out}")
    rps = float(out.split("Requests/sec:")[1].split()[0])
    total = int(out.split(" requests in")[0].split()[-1])
    return rps, total


def kill_during_creates(proc, port, prefix, body_extra, stored, threads=8, kill_after=1.5):
    """Creates from several clients against the gateway `proc` on `port`; SIGKILL mid-stream;
    then `stored()` (the names the store holds): how many were acknowledged, and how many of
    those are missing."""
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def client(t):
        i = 0
        while not stop.is_set():
            i += 1
            name = f"{prefix}-{t}-{i}"
            body = json.dumps({"userKey": {"username": name, "authenticator": "LOCAL"}, **body_extra})
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("PUT", "/user-service/v1/user", body,
                          {"Authorization": "Bearer bench-vc-token", "Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    with lock:
                        acked.append(name)
                c.close()
            except OSError:
                return

    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in ts:
        t.join()
    have = stored()
    return len(acked), len([a for a in acked if a not in have])


def durability(binary, cfg, db):
    """Every create the gateway on SQLite acknowledged before SIGKILL is in the store."""
    def stored():
        con = sqlite3.connect(db)
        names = {r[0] for r in con.execute("SELECT user_name FROM users WHERE user_name LIKE 'kill-%'")}
        con.close()
        return names

    return kill_during_creates(start(binary, cfg), PORT, "kill", {"password": "Pw-1234-bench"}, stored)


def gateway(binary, work, name, seconds, conns):
    """Creates/s and updates/s through `binary` on a store of its own; the updates go to the
    users it created."""
    db = os.path.join(work, f"{name}.db")
    cfg = config(work, db, name)
    proc = start(binary, cfg)
    try:
        c_rps, created = wrk(CREATE_LUA % ("gw", ""), work, f"{name}-create.lua", seconds, conns)
        u_rps, updated = wrk(UPDATE_LUA % created, work, f"{name}-update.lua", seconds, conns)
        # Each of these hashes its password (Argon2id, the default [secrets.passwords]).
        p_rps, _ = wrk(CREATE_LUA % ("pw", '"password":"Pw-1234-bench",'), work, f"{name}-create-pw.lua", seconds, conns)
    finally:
        proc.terminate()
        proc.wait()
    return {"creates": c_rps, "updates": u_rps, "password_creates": p_rps, "created": created,
            "updated": updated, "db": db, "cfg": cfg}


PG_KEY = "b" * 64
PG_PORT = 9150


PG_DIR = tempfile.mkdtemp(prefix="userbridge-pg-")


def pg_start(work):
    """A throwaway cluster (its own directory under the system's temp, which the server's user
    can reach): its URL and password."""
    r = subprocess.run([os.path.join(ROOT, "scripts/pg"), "start", PG_DIR, str(PG_PORT)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/pg start: {r.stderr}")
    with open(os.path.join(PG_DIR, "password")) as f:
        return r.stdout.strip(), f.read().strip()


def pg_stop(work):
    subprocess.run([os.path.join(ROOT, "scripts/pg"), "stop", PG_DIR], check=False)


def psql(url, password, sql):
    return subprocess.run(["psql", url, "-X", "-A", "-t", "-c", sql], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PGPASSWORD=password)).stdout.strip()


def pg_config(work, url, name, port):
    path = os.path.join(work, f"{name}.toml")
    backend = f'kind = "postgres"\nurl = "{url}"\npool_size = 16'
    with open(path, "w") as f:
        f.write(bench.userbridge_toml(port, backend, work) + f'\n[secrets]\nkey = "{PG_KEY}"\n')
    return path


def start_on(binary, cfg, port, password):
    env = dict(os.environ, USERBRIDGE_LOG="warn", USERBRIDGE_BACKEND__PASSWORD=password)
    p = subprocess.Popen([binary, "serve", "--config", cfg], env=env)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5).read()
            return p
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("userbridge did not become ready on PostgreSQL")
            time.sleep(0.02)


def wrk_many(script_of, work, name, seconds, conns, ports):
    """wrk against each port at once (the connections split among them, each its own script
    from `script_of(port)`, so that their users' names differ): the summed rate."""
    each = max(1, conns // len(ports))
    procs = []
    for p in ports:
        script = os.path.join(work, f"{p}-{name}")
        with open(script, "w") as f:
            f.write(script_of(p))
        procs.append(subprocess.Popen(["wrk", "-t1", f"-c{each}", f"-d{seconds}s", "-s", script,
                                       f"http://127.0.0.1:{p}"], stdout=subprocess.PIPE, text=True))
    rps, total = 0.0, 0
    for p in procs:
        out = p.communicate()[0]
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"not every answer was a success:\n{out}")
        rps += float(out.split("Requests/sec:")[1].split()[0])
        total += int(out.split(" requests in")[0].split()[-1])
    return rps, total


def pg_gateway(binary, work, url, password, instances, seconds, conns, label):
    """Creates/s and updates/s through `instances` gateways on the one database."""
    ports = [PG_PORT + 10 + i for i in range(instances)]
    procs = [start_on(binary, pg_config(work, url, f"pg-{label}-{i}", port), port, password)
             for i, port in enumerate(ports)]
    try:
        c_rps, created = wrk_many(lambda p: CREATE_LUA % (f"pg{label}{p}", ""), work, f"pg-{label}-create.lua",
                                  seconds, conns, ports)
        n = int(psql(url, password, "SELECT max(numeric_id) FROM users"))
        u_rps, _ = wrk_many(lambda p: UPDATE_LUA % n, work, f"pg-{label}-update.lua", seconds, conns, ports)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    return {"creates": c_rps, "updates": u_rps, "created": created}


PGBENCH_CREATE = """\\set n random(1, 1000000000)
BEGIN;
INSERT INTO users (id, user_name, authenticator, doc, secrets, created, modified)
VALUES (gen_random_uuid()::text, 'ref-' || :n || '-' || :client_id || '-' || random(), 'LOCAL',
 '{"userName":"ref","name":{"givenName":"Ann","familyName":"Smith"},"emails":[{"value":"ref@example.com","primary":true}],"active":true,"urn:userbridge:params:scim:schemas:extension:2.0:User":{"authenticator":"LOCAL"}}',
 '{}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')
ON CONFLICT (user_name, authenticator) DO NOTHING RETURNING numeric_id;
END;
"""

PGBENCH_UPDATE = """\\set n random(1, %d)
BEGIN;
SELECT numeric_id, id, doc::text, secrets, created, modified, version FROM users WHERE numeric_id = :n FOR UPDATE;
UPDATE users SET doc = '{"userName":"ref","displayName":"Ann Smith","name":{"formatted":"Ann Smith"}}', version = version + 1, modified = '2026-01-01T00:00:00.001Z' WHERE numeric_id = :n;
END;
"""


def pgbench(url, password, work, script_text, name, seconds, conns):
    """pgbench running `script_text` (the gateway's transactions, without the gateway): tps."""
    script = os.path.join(work, name)
    with open(script, "w") as f:
        f.write(script_text)
    binary = subprocess.run("ls /usr/lib/postgresql/*/bin/pgbench | tail -1", shell=True,
                            capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run([binary, "-n", "-c", str(conns), "-j", "2", "-T", str(seconds), "-f", script, url],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PGPASSWORD=password)).stdout
    return float(out.split("tps = ")[1].split()[0])


def pg_durability(binary, work, url, password):
    """Every create the gateway on PostgreSQL acknowledged before SIGKILL is in the database."""
    port = PG_PORT + 30
    proc = start_on(binary, pg_config(work, url, "pg-kill", port), port, password)
    return kill_during_creates(proc, port, "pgkill", {}, lambda: set(
        psql(url, password, "SELECT user_name FROM users WHERE user_name LIKE 'pgkill-%'").split()))


def postgres_part(binary, work, seconds, conns):
    url, password = pg_start(work)
    try:
        one = pg_gateway(binary, work, url, password, 1, seconds, conns, "one")
        two = pg_gateway(binary, work, url, password, 2, seconds, conns, "two")
        n = int(psql(url, password, "SELECT max(numeric_id) FROM users"))
        ref_c = pgbench(url, password, work, PGBENCH_CREATE, "pgbench-create.sql", seconds, conns)
        ref_u = pgbench(url, password, work, PGBENCH_UPDATE % n, "pgbench-update.sql", seconds, conns)
        acked, missing = pg_durability(binary, work, url, password)
    finally:
        pg_stop(work)
    print(f"\nPostgreSQL (a throwaway cluster on this machine, fsync off), {conns} connections\n")
    print("| measure | gateway, 1 instance | gateway, 2 instances | pgbench, same transactions | ratio (1 instance) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| creates/s | {one['creates']:,.0f} | {two['creates']:,.0f} | {ref_c:,.0f} | {one['creates'] / ref_c:.2f}x |")
    print(f"| updates/s | {one['updates']:,.0f} | {two['updates']:,.0f} | {ref_u:,.0f} | {one['updates'] / ref_u:.2f}x |")
    print(f"\nkill -9 during creates on PostgreSQL: {acked} acknowledged, {missing} missing from the database\n")
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1, help="rounds (A and B alternate in each)")
    ap.add_argument("--userbridge", default=os.path.join(ROOT, "target/release/userbridge"))
    ap.add_argument("--userbridge-b", help="a second build, measured in the same rounds (A/B)")
    ap.add_argument("--loop", default=os.path.join(ROOT, "target/release/examples/bench-sqlite-loop"))
    ap.add_argument("--postgres", action="store_true",
                    help="also the gateway on PostgreSQL, one and two instances, against pgbench")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="userbridge-sqlite-")
    builds = [("A", args.userbridge)] + ([("B", args.userbridge_b)] if args.userbridge_b else [])
    runs = {label: [] for label, _ in builds}
    for i in range(args.rounds):
        order = builds if i % 2 == 0 else builds[::-1]
        for label, binary in order:
            runs[label].append(gateway(binary, work, f"{label.lower()}{i}", args.seconds, args.connections))
    first = runs["A"][0]
    ref = json.loads(subprocess.run([args.loop, os.path.join(work, "loop.db"), str(first["created"]),
                                     str(first["updated"])], capture_output=True, text=True, check=True).stdout)
    hashing = json.loads(subprocess.run([args.loop, "--hash-rate", str(args.seconds)],
                                         capture_output=True, text=True, check=True).stdout)
    acked, missing = {}, {}
    for label, binary in builds:
        last = runs[label][-1]
        acked[label], missing[label] = durability(binary, last["cfg"], last["db"])

    def med(label, key):
        return statistics.median(r[key] for r in runs[label])

    print(f"\n{args.seconds}s per phase, {args.connections} connections, {args.rounds} round(s), medians; "
          "WAL, synchronous=NORMAL for both\n")
    for label, binary in builds:
        if len(builds) > 1:
            print(f"{label}: {binary}\n")
        c, u = med(label, "creates"), med(label, "updates")
        print("| measure | gateway (HTTP + translate + SQLite) | plain rusqlite loop | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| creates/s | {c:,.0f} | {ref['creates_per_s']:,.0f} | {c / ref['creates_per_s']:.2f}x |")
        print(f"| updates/s | {u:,.0f} | {ref['updates_per_s']:,.0f} | {u / ref['updates_per_s']:.2f}x |")
        p, h = med(label, "password_creates"), hashing["hashes_per_s"]
        print(f"\n| measure | gateway | Argon2id alone ({hashing['threads']} threads, "
              f"{hashing['ms_per_hash']:.1f} ms per hash) | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| creates/s with a password | {p:,.1f} | {h:,.1f} hashes/s | {p / h:.2f}x |")
        print(f"\nkill -9 during creates: {acked[label]} acknowledged, {missing[label]} missing from the store\n")
    pg_missing = postgres_part(args.userbridge, work, args.seconds, args.connections) if args.postgres else 0
    if any(missing.values()) or pg_missing:
        sys.exit(1)


if __name__ == "__main__":
    main()
