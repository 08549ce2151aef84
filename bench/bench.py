#!/usr/bin/env python3
"""userbridge against nginx and HAProxy, in one run, on one machine.

Started by bench/run (which installs wrk, nginx and haproxy and builds the binaries). Every
target is measured in every round, targets interleaved, so that the machine's drift hits them
all alike; the table gives medians over rounds.

Targets (all in front of the same tiny hyper backend, bench/backend.rs):
  direct          wrk straight to the backend
  nginx-1w        nginx pass-through, 1 worker, upstream keepalive, access log off
  nginx-auto      the same with worker_processes auto
  haproxy         pass-through, http-reuse always
  ub-commvault    userbridge translating the 958-byte Commvault V4 update, forwarding the
                  canonical operation through its webhook backend, rendering the answer
  ub-vc           the same for a vc-user-service update
  ub-opscenter    the same for an opscenter update (its mapping has preconditions on the
                  stored user, so each request costs the backend a get and an update)
The pass-through targets carry the Commvault request. With --userbridge-b BINARY, a second
userbridge (another build: the A/B of a change) runs beside the first, and its targets
ub-*-b are measured in the same interleaved rounds.

With --stores, the same run then measures the gateway on its stores, in interleaved rounds of
their own: vc-user-service creates (a new user each) on the embedded SQLite store, on a
throwaway PostgreSQL (scripts/pg) with one instance, and with two instances on the one
database; the CPU per request of the gateways and of the database, and the gateways' syscalls.
bench/sqlite compares the same stores against their own reference (a rusqlite loop, pgbench).
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PORTS = {"backend": 9100, "nginx-1w": 9101, "nginx-auto": 9102, "haproxy": 9103, "userbridge": 9104,
         "userbridge-b": 9105, "callgrind": 9106}
ADMIN_PASSWORD = "bench-admin-password"


def requests():
    """The three dialect requests: (method, path, headers, body bytes)."""
    with open(os.path.join(ROOT, "benches/data/commvault-update-958.json"), "rb") as f:
        cv = json.loads(f.read())
    cv["validationPassword"] = base64.b64encode(ADMIN_PASSWORD.encode()).decode()
    cv_body = json.dumps(cv, indent=2).encode()
    vc_body = json.dumps({
        "userKey": {"username": "asmith", "authenticator": "LOCAL"},
        "firstName": "Ann", "lastName": "Smith", "email": "asmith@example.com",
        "description": "Storage and backup operator for the EMEA region",
        "enabled": True, "locked": False, "primaryPhone": "555 0100",
        "primaryPhoneCountryCode": "+1", "orgId": "emea-ops",
    }).encode()
    ops_id = "2819c223-7f76-453a-919d-413861904646"
    ops_body = json.dumps({
        "id": ops_id, "username": "asmith", "firstName": "Ann", "lastName": "Smith",
        "email": "asmith@example.com", "description": "Storage admin", "enabled": True,
    }).encode()
    return {
        "commvault": ("PUT", "/webconsole/api/V4/user/42",
                      {"Authtoken": "QSDK bench-commvault-token", "Content-Type": "application/json"}, cv_body),
        "vc": ("POST", "/user-service/v1/user",
               {"Authorization": "Bearer bench-vc-token", "Content-Type": "application/json"}, vc_body),
        "opscenter": ("PUT", f"/portal/security/v1/users/{ops_id}",
                      {"Authorization": "Bearer bench-opscenter-token", "Content-Type": "application/json"}, ops_body),
    }


def lua(work, name, method, headers, body):
    body_path = os.path.join(work, f"{name}.body")
    with open(body_path, "wb") as f:
        f.write(body)
    script = os.path.join(work, f"{name}.lua")
    lines = [f'local f = io.open("{body_path}", "rb")', "wrk.body = f:read('*a')", "f:close()",
             f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    return script


def configs(work):
    be = PORTS["backend"]
    for name, workers in (("nginx-1w", "1"), ("nginx-auto", "auto")):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    client_body_buffer_size 64k;
    upstream be {{ server 127.0.0.1:{be}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{PORTS[name]} reuseport backlog=4096;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write(f"""
global
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:{PORTS['haproxy']}
    default_backend be
backend be
    server s1 127.0.0.1:{be}
""")
    for name in ("userbridge", "userbridge-b"):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(work, f"{name}.toml"), "w") as f:
            f.write(userbridge_toml(PORTS[name], f'kind = "webhook"\nurl = "http://127.0.0.1:{be}/hook"', d,
                                    MAPPINGS.get(name)))


# The mappings directory of each userbridge (an A/B across a mapping-language change gives each
# binary the files it understands, and a snapshot keeps a run apart from edits to the
# checkout: --mappings-a, --mappings-b).
MAPPINGS = {}


def userbridge_toml(port, backend, work, mappings=None):
    """A userbridge config on `port` with the bench credentials, the `[backend]` lines given,
    the audit trail (on, as by default) in `work`, and the mappings in `mappings` (default: the
    checkout's)."""
    mappings = mappings or os.path.join(ROOT, "mappings")
    return f"""
[server]
listen = "127.0.0.1:{port}"
[mappings]
dir = "{mappings}"
[dialects.opscenter]
vars = {{ base = "/portal" }}
[backend]
{backend}
[audit]
path = "{work}/audit.jsonl"
[[credentials]]
name = "bench-vc"
dialect = "vc-user-service"
token = "bench-vc-token"
roles = ["user-administrator"]
[[credentials]]
name = "bench-commvault"
dialect = "commvault-v4"
token = "bench-commvault-token"
roles = ["user-administrator"]
password = "{ADMIN_PASSWORD}"
[[credentials]]
name = "bench-opscenter"
dialect = "opscenter"
token = "bench-opscenter-token"
roles = ["opscenter-security-administrator"]
"""


def pin(cmd, cpu, pinned):
    return (["taskset", "-c", cpu] + cmd) if pinned else cmd


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"nothing listens on {port}")


def family(pid):
    """pid and all its descendants."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        kids = []
    for k in kids:
        out += family(int(k))
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


def peak_rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(url, script, seconds, conns, pinned):
    cmd = pin(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url], "0", pinned)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"{url}: not every answer was a success:\n{out}")
    return {"rps": rps, "requests": total, "p50": to_ms(lat["50"]), "p99": to_ms(lat["99"])}


def perf_counts(pids, measure):
    """Syscalls and context switches of `pids` (all their threads) while `measure()` runs:
    `perf stat` with the raw_syscalls tracepoint and the context-switches software event
    (both work without hardware counters). None when perf cannot count here."""
    if not shutil.which("perf"):
        return None, measure()
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches",
                             "-p", ",".join(map(str, pids))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    try:
        res = measure()
    finally:
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate(timeout=10)
    counts = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].strip().isdigit():
            counts[f[2]] = int(f[0])
    if "raw_syscalls:sys_enter" not in counts:
        return None, res
    return counts, res


def instructions_per_request(binary, config, port, method, path, headers, body, n, keep=None):
    """Instructions the whole gateway executes per request (callgrind; one worker, so that the
    count is one thread's path): warm up, zero the counters, send `n` requests on one
    keep-alive connection, dump, divide. Repeatable for one binary whatever the machine does."""
    import http.client
    out = tempfile.mktemp(prefix="userbridge-callgrind-")
    env = dict(os.environ, USERBRIDGE_LOG="warn", USERBRIDGE_SERVER__WORKERS="1")
    vg = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                           binary, "serve", "--config", config],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def send(k):
            for _ in range(k):
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status >= 300:
                    raise RuntimeError(f"{path}: {r.status} under callgrind")
        send(200)
        subprocess.run(["callgrind_control", "--zero", str(vg.pid)], check=True, capture_output=True)
        send(n)
        subprocess.run(["callgrind_control", "--dump", str(vg.pid)], check=True, capture_output=True)
        conn.close()
    finally:
        vg.send_signal(signal.SIGTERM)
        try:
            vg.wait(timeout=30)
        except subprocess.TimeoutExpired:
            vg.kill()
    total = 0
    for dump in [f for f in os.listdir(os.path.dirname(out)) if f.startswith(os.path.basename(out))]:
        path_ = os.path.join(os.path.dirname(out), dump)
        with open(path_) as f:
            text = f.read()
        # Dump part 1 (`.1`), made after the measured requests, holds their count (the
        # counters were zeroed before them); the last part is the shutdown.
        if dump.endswith(".1"):
            m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if m:
                total = max(total, int(m.group(1)))
            if keep:
                shutil.copy(path_, keep)
        os.unlink(path_)
    return total / n


STORE_PORTS = {"sqlite": 9120, "pg-1": 9121, "pg-2a": 9122, "pg-2b": 9123}


def stores_part(args, work):
    """Creates through the gateway on SQLite, on PostgreSQL (1 instance), on PostgreSQL
    (2 instances), rounds interleaved: req/s, CPU µs/req of the gateways and of the database,
    the gateways' syscalls/req. Returns the medians."""
    import sqlite as sq  # the store benchmark's helpers (cluster, configs, scripts)
    for name, port in list(STORE_PORTS.items()) + [(f"{n}-b", p + 10) for n, p in STORE_PORTS.items()]:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                sys.exit(f"port {port} ({name}) is in use: stop what listens there first")
        except OSError:
            pass
    url, password = sq.pg_start(work)
    with open(os.path.join(sq.PG_DIR, "data", "postmaster.pid")) as f:
        postmaster = int(f.readline())
    procs = {}
    # With --userbridge-b, the second build's gateways beside the first's (ports + 10).
    builds = [("", args.userbridge, 0)] + ([("-b", args.userbridge_b, 10)] if args.userbridge_b else [])
    ports = {}
    try:
        targets = {}
        for suffix, binary, shift in builds:
            env = dict(os.environ, USERBRIDGE_LOG="warn")
            if suffix:
                env.update(dict(e.split("=", 1) for e in args.env_b))
            name = f"sqlite{suffix}"
            ports[name] = STORE_PORTS["sqlite"] + shift
            cfg = os.path.join(work, f"store-{name}.toml")
            with open(cfg, "w") as f:
                f.write(userbridge_toml(ports[name], f'kind = "sqlite"\npath = "{work}/store{suffix}.db"', work))
            procs[name] = subprocess.Popen([binary, "serve", "--config", cfg], env=env)
            wait_port(ports[name])
            for n in ("pg-1", "pg-2a", "pg-2b"):
                name = f"{n}{suffix}"
                ports[name] = STORE_PORTS[n] + shift
                procs[name] = sq.start_on(binary, sq.pg_config(work, url, f"store-{name}", ports[name]),
                                          ports[name], password)
            targets.update({f"sqlite{suffix}": [f"sqlite{suffix}"], f"postgres x1{suffix}": [f"pg-1{suffix}"],
                            f"postgres x2{suffix}": [f"pg-2a{suffix}", f"pg-2b{suffix}"]})

        # The last numeric id of the run 1..n without a gap: a create cut off when wrk stops (its
        # client gone) may have used a number and rolled back.
        contiguous = ("SELECT coalesce(min(numeric_id), 1) FROM users u WHERE NOT EXISTS "
                      "(SELECT 1 FROM users v WHERE v.numeric_id = u.numeric_id + 1)")

        def users_in(label):
            """n: the users 1..n exist in the store behind `label`."""
            if label.startswith("sqlite"):
                suffix = label[len("sqlite"):]
                with sqlite3.connect(f"{work}/store{suffix}.db") as db:
                    return db.execute(contiguous).fetchone()[0]
            return int(sq.psql(url, password, contiguous))

        def run(label, op, seconds, conns):
            tag = label.replace(" ", "")
            if op == "creates":
                script = lambda p: sq.CREATE_LUA % (f"s{tag}{p}{time.monotonic_ns()}", "")  # noqa: E731
            else:
                n = users_in(label)
                script = lambda p: sq.UPDATE_LUA % n  # noqa: E731
            return sq.wrk_many(script, work, f"store-{tag}-{op}.lua", seconds, conns,
                               [ports[n] for n in targets[label]])

        ops = ("creates", "updates")
        for op in ops:  # warm up (pools, the schema migrated), and users to update
            for label in targets:
                run(label, op, 1, args.connections)
        cases = [(label, op) for op in ops for label in targets]
        results = {c: [] for c in cases}
        for r in range(args.rounds):
            for label, op in cases[r % len(cases):] + cases[: r % len(cases)]:
                gw = [p for n in targets[label] for p in family(procs[n].pid)]
                db = family(postmaster)
                before = (cpu_ticks(gw), cpu_ticks(db))
                rps, total = run(label, op, args.seconds, args.connections)
                after = (cpu_ticks(gw), cpu_ticks(db))
                results[(label, op)].append({
                    "rps": rps,
                    "gw_cpu_us": (after[0] - before[0]) * 1e6 / CLK_TCK / max(total, 1),
                    "db_cpu_us": (after[1] - before[1]) * 1e6 / CLK_TCK / max(total, 1),
                })
            print(f"stores round {r + 1}/{args.rounds} done", file=sys.stderr)
        syscalls = {}
        for label, op in cases:
            gw = [p for n in targets[label] for p in family(procs[n].pid)]
            counts, res = perf_counts(gw, lambda label=label, op=op: {
                "requests": run(label, op, args.seconds, args.connections)[1]})
            if counts:
                syscalls[(label, op)] = counts.get("raw_syscalls:sys_enter", 0) / max(res["requests"], 1)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        sq.pg_stop(work)
    med = {c: {k: statistics.median(r[k] for r in rs) for k in ("rps", "gw_cpu_us", "db_cpu_us")}
           for c, rs in results.items()}
    print(f"\nstores: vc-user-service creates (a new user each, no password) and Commvault V4 updates "
          f"(of the users created), {args.rounds} rounds x {args.seconds}s, {args.connections} connections, "
          "medians; PostgreSQL is a throwaway cluster on this machine (fsync off)\n")
    print("| store | operation | req/s | gateway CPU µs/req | database CPU µs/req | gateway syscalls/req |")
    print("|---|---|---:|---:|---:|---:|")
    for (label, op), m in med.items():
        db = "—" if label.startswith("sqlite") else f"{m['db_cpu_us']:.1f}"
        sc = f"{syscalls[(label, op)]:.1f}" if (label, op) in syscalls else "—"
        print(f"| {label} | {op} | {m['rps']:,.0f} | {m['gw_cpu_us']:.1f} | {db} | {sc} |")
    return ({f"{label} {op}": m for (label, op), m in med.items()},
            {f"{label} {op}": v for (label, op), v in syscalls.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--pin", action="store_true", help="wrk on CPU 0; proxies and backend on CPU 1")
    ap.add_argument("--userbridge", default=os.path.join(ROOT, "target/release/userbridge"))
    ap.add_argument("--userbridge-b", help="a second userbridge binary, measured beside the first (A/B)")
    ap.add_argument("--mappings-a", metavar="DIR",
                    help="the mappings directory of the first userbridge (default: the checkout's), "
                         "for an A/B across a change of the mapping language")
    ap.add_argument("--mappings-b", metavar="DIR",
                    help="the mappings directory of the second userbridge (default: the checkout's)")
    ap.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the second userbridge only (allocator settings, say)")
    ap.add_argument("--backend", default=os.path.join(ROOT, "target/release/examples/bench-backend"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--stores", action="store_true",
                    help="also measure creates on SQLite and PostgreSQL (1 and 2 instances), after the pass-through rounds")
    ap.add_argument("--callgrind", type=int, default=2000,
                    help="requests counted under callgrind for each userbridge target (0: skip)")
    ap.add_argument("--callgrind-keep", metavar="DIR",
                    help="keep each target's callgrind profile as DIR/<target>.callgrind (for callgrind_annotate)")
    args = ap.parse_args()

    for name, port in PORTS.items():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                sys.exit(f"port {port} ({name}) is in use: stop what listens there first")
        except OSError:
            pass
    work = tempfile.mkdtemp(prefix="userbridge-bench-")
    if args.mappings_a:
        MAPPINGS["userbridge"] = os.path.abspath(args.mappings_a)
    if args.mappings_b:
        MAPPINGS["userbridge-b"] = os.path.abspath(args.mappings_b)
    configs(work)
    reqs = requests()
    scripts = {k: lua(work, k, m, h, b) for k, (m, _, h, b) in reqs.items()}
    procs = {}
    env = dict(os.environ, USERBRIDGE_LOG="warn")
    try:
        procs["backend"] = subprocess.Popen(pin([args.backend, f"127.0.0.1:{PORTS['backend']}"], "1", args.pin))
        wait_port(PORTS["backend"])
        for n in ("nginx-1w", "nginx-auto"):
            procs[n] = subprocess.Popen(pin(["nginx", "-c", os.path.join(work, n, "nginx.conf"), "-p", os.path.join(work, n)], "1", args.pin),
                                        stderr=subprocess.DEVNULL)
        procs["haproxy"] = subprocess.Popen(pin(["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")], "1", args.pin),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready to serve: from exec to the first answered /healthz.
        builds = [("userbridge", args.userbridge)] + ([("userbridge-b", args.userbridge_b)] if args.userbridge_b else [])
        ready = {}
        for name, binary in builds:
            started = time.monotonic()
            env_of = dict(env, **dict(e.split("=", 1) for e in args.env_b)) if name == "userbridge-b" else env
            procs[name] = subprocess.Popen(pin([binary, "serve", "--config", os.path.join(work, f"{name}.toml")], "1", args.pin),
                                           env=env_of)
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORTS[name]}/healthz", timeout=0.5).read()
                    break
                except OSError:
                    if time.monotonic() - started > 10:
                        raise RuntimeError(f"{name} did not start")
                    time.sleep(0.002)
            ready[name] = (time.monotonic() - started) * 1000
        ready_ms = ready["userbridge"]
        for n in ("nginx-1w", "nginx-auto", "haproxy"):
            wait_port(PORTS[n])
        time.sleep(0.3)
        for n, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{n} exited with {p.returncode}")

        cv_path = reqs["commvault"][1]
        targets = [
            ("direct", "backend", PORTS["backend"], "commvault", cv_path),
            ("nginx-1w", "nginx-1w", PORTS["nginx-1w"], "commvault", cv_path),
            ("nginx-auto", "nginx-auto", PORTS["nginx-auto"], "commvault", cv_path),
            ("haproxy", "haproxy", PORTS["haproxy"], "commvault", cv_path),
            ("ub-commvault", "userbridge", PORTS["userbridge"], "commvault", cv_path),
            ("ub-vc", "userbridge", PORTS["userbridge"], "vc", reqs["vc"][1]),
            ("ub-opscenter", "userbridge", PORTS["userbridge"], "opscenter", reqs["opscenter"][1]),
        ]
        if args.userbridge_b:
            targets += [(f"{n}-b", "userbridge-b", PORTS["userbridge-b"], req, path)
                        for n, proc, port, req, path in targets if proc == "userbridge"]
        # Warm up every target (connection pools, caches) and check it answers 2xx.
        for name, proc, port, req, path in targets:
            wrk(f"http://127.0.0.1:{port}{path}", scripts[req], 1, args.connections, args.pin)

        results = {t[0]: [] for t in targets}
        for r in range(args.rounds):
            order = targets[r % len(targets):] + targets[: r % len(targets)]
            for name, proc, port, req, path in order:
                pids = family(procs[proc].pid)
                before = cpu_ticks(pids)
                res = wrk(f"http://127.0.0.1:{port}{path}", scripts[req], args.seconds, args.connections, args.pin)
                after = cpu_ticks(pids)
                res["cpu_us"] = (after - before) * 1e6 / CLK_TCK / max(res["requests"], 1)
                results[name].append(res)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

        # Syscalls and context switches per request: one more run per target, counted by perf.
        per_req = {}
        for name, proc, port, req, path in targets:
            pids = [p for p in family(procs[proc].pid)]
            counts, res = perf_counts(pids, lambda: wrk(f"http://127.0.0.1:{port}{path}", scripts[req],
                                                        args.seconds, args.connections, args.pin))
            if counts:
                per_req[name] = {k: v / max(res["requests"], 1) for k, v in counts.items()}

        # Peak memory at 256 concurrent keep-alive connections.
        rss = {}
        for name, proc, port, req, path in targets:
            wrk(f"http://127.0.0.1:{port}{path}", scripts[req], 2, 256, args.pin)
            rss[name] = peak_rss_kib(family(procs[proc].pid)) / 1024

        # Instructions per request of the whole gateway path (userbridge only), under callgrind.
        instr = {}
        if args.callgrind and shutil.which("valgrind"):
            for name, proc, port, req, path in targets:
                if not proc.startswith("userbridge"):
                    continue
                m, _, h, b = reqs[req]
                binary = args.userbridge if proc == "userbridge" else args.userbridge_b
                cg_port = PORTS["callgrind"]
                cfg = os.path.join(work, f"{proc}-callgrind.toml")
                with open(os.path.join(work, f"{proc}.toml")) as f:
                    text = f.read().replace(f"127.0.0.1:{PORTS[proc]}", f"127.0.0.1:{cg_port}")
                with open(cfg, "w") as f:
                    f.write(text)
                keep = None
                if args.callgrind_keep:
                    os.makedirs(args.callgrind_keep, exist_ok=True)
                    keep = os.path.join(args.callgrind_keep, f"{name}.callgrind")
                instr[name] = instructions_per_request(binary, cfg, cg_port, m, path, h, b, args.callgrind, keep)

        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu_us")} for n, rs in results.items()}
        best_pass = max(med[n]["rps"] for n in ("nginx-1w", "nginx-auto", "haproxy"))
        best_name = max(("nginx-1w", "nginx-auto", "haproxy"), key=lambda n: med[n]["rps"])
        mode = "pinned (wrk on CPU 0; proxy and backend on CPU 1)" if args.pin else "unpinned"
        print(f"\n{mode}; {args.rounds} rounds x {args.seconds}s, {args.connections} connections, medians; "
              f"userbridge ready {ready_ms:.0f} ms after exec"
              + (f" ({args.userbridge}); -b: {args.userbridge_b}, ready {ready['userbridge-b']:.0f} ms" if args.userbridge_b else "")
              + "\n")
        print("| target | req/s | p50 ms | p99 ms | CPU µs/req (target) | syscalls/req | ctx switches/req | instructions/req | peak RSS MiB @256 conns | req/s ÷ best pass-through |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in results:
            m = med[n]
            cpu = "—" if n == "direct" else f"{m['cpu_us']:.1f}"
            pr = per_req.get(n)
            sc = f"{pr['raw_syscalls:sys_enter']:.1f}" if pr else "—"
            cs = f"{pr.get('context-switches', 0):.2f}" if pr else "—"
            ins = f"{instr[n]:,.0f}" if n in instr else "—"
            print(f"| {n} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {cpu} | {sc} | {cs} | {ins} | {rss[n]:.1f} | {m['rps'] / best_pass:.2f}x |")
        print(f"\nbest pass-through: {best_name}; CPU of direct is the backend's alone: {med['direct']['cpu_us']:.1f} µs/req")
        stores = stores_part(args, work) if args.stores else None
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"mode": mode, "ready_ms": ready_ms, "median": med, "rss_mib": rss, "per_request": per_req,
                           "instructions": instr, "rounds": results, "stores": stores}, f, indent=1)
    finally:
        for p in procs.values():
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
