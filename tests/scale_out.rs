//! Many gateways on one PostgreSQL, as an estate runs them behind a load balancer: three
//! `userbridge serve` processes on one real database (started by `scripts/pg`), clients spread
//! across them. Concurrent creates of one user from different instances (exactly one wins, the
//! others 409), concurrent group operations and attribute updates on one user (none lost), one
//! instance `kill -9`ed during a load of creates, and the database reconciled after: nothing
//! lost, nothing doubled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::binary::Running;
use common::postgres::Postgres;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const VC: &str = "Bearer demo-vc-token";
const CV: &str = "QSDK demo-commvault-token";
/// Groups the instances declare beside the shipped 3 and 4.
const GROUPS: std::ops::RangeInclusive<i32> = 5..=16;

/// The `[[groups]]` the instances declare beside the shipped 3 and 4.
fn more_groups() -> String {
    GROUPS
        .map(|g| format!("\n[[groups]]\nid = {g}\nname = \"Group {g}\"\n"))
        .collect()
}

/// A gateway process on `pg`, declaring [`GROUPS`].
fn instance(pg: &Postgres) -> Running {
    pg.serve(&more_groups())
}

/// A gateway process on `pg` whose `[backend]` table holds `backend`, declaring [`GROUPS`],
/// and `more` tables after them.
fn instance_with(pg: &Postgres, backend: String, more: &str) -> Running {
    pg.serve_with(backend, &format!("{}{more}", more_groups()), &[])
}

async fn vc_create(c: &Client, base: &str, name: &str) -> Result<StatusCode, reqwest::Error> {
    let r = c
        .put(format!("{base}/user-service/v1/user"))
        .header("Authorization", VC)
        .json(
            &json!({"userKey": {"username": name, "authenticator": "LOCAL"},
                      "email": format!("{name}@example.com")}),
        )
        .send()
        .await?;
    Ok(r.status())
}

async fn cv_update(c: &Client, base: &str, numeric_id: &str, body: Value) -> StatusCode {
    let r = c
        .put(format!("{base}/webconsole/api/V4/user/{numeric_id}"))
        .header("Authtoken", CV)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["errorCode"], 0, "{answer}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_on_one_postgres_lose_and_double_nothing() {
    let pg = Postgres::start();
    let mut gws: Vec<Running> = (0..3).map(|_| instance(&pg)).collect();
    let bases: Vec<String> = gws.iter().map(|g| g.base.clone()).collect();
    let c = Client::new();
    for b in &bases {
        let r = c.get(format!("{b}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // Three instances started at once migrated the schema once, every version in order.
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM userbridge_schema"),
        (1..=userbridge::backend::postgres::MIGRATIONS.len())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );

    // 1. The same user created at once through every instance: exactly one wins.
    for i in 0..10 {
        let name = format!("race-{i}");
        let tries = bases.iter().map(|b| vc_create(&c, b, &name));
        let got: Vec<StatusCode> = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let won = got.iter().filter(|s| **s == StatusCode::OK).count();
        let lost = got.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((won, lost), (1, 2), "{name}: {got:?}");
        let rows = pg.psql(&format!(
            "SELECT count(*) FROM users WHERE user_name = '{name}'"
        ));
        assert_eq!(rows, "1", "{name}");
    }

    // 2. One user changed at once through every instance: group additions and attribute
    // updates, none lost.
    assert_eq!(vc_create(&c, &bases[0], "shared").await.unwrap(), 200);
    let n = pg.psql("SELECT numeric_id FROM users WHERE user_name = 'shared'");
    let versions_before = pg.psql("SELECT sum(version) FROM groups WHERE id BETWEEN 5 AND 16");
    let mut calls = Vec::new();
    for (k, g) in GROUPS.enumerate() {
        let base = bases[k % 3].clone();
        let (c, n) = (c.clone(), n.clone());
        calls.push(tokio::spawn(async move {
            let body = json!({"userGroupOperation": "ADD", "userGroups": [{"id": g}]});
            cv_update(&c, &base, &n, body).await
        }));
    }
    for (k, (member, value)) in [
        ("fullName", "Shared User"),
        ("email", "shared@corp.example"),
        ("description", "changed from three places"),
    ]
    .into_iter()
    .enumerate()
    {
        let base = bases[k % 3].clone();
        let (c, n) = (c.clone(), n.clone());
        calls.push(tokio::spawn(async move {
            cv_update(&c, &base, &n, json!({ member: value })).await
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let members = pg.psql(&format!(
        "SELECT string_agg(group_id::text, ',' ORDER BY group_id) FROM members WHERE user_numeric_id = {n}"
    ));
    let want: Vec<String> = GROUPS.map(|g| g.to_string()).collect();
    assert_eq!(members, want.join(","));
    let versions_after = pg.psql("SELECT sum(version) FROM groups WHERE id BETWEEN 5 AND 16");
    let moved: i64 =
        versions_after.parse::<i64>().unwrap() - versions_before.parse::<i64>().unwrap();
    assert_eq!(
        moved, 12,
        "every group whose members changed moved its version once"
    );
    let doc: Value = serde_json::from_str(&pg.psql(&format!(
        "SELECT doc::text FROM users WHERE numeric_id = {n}"
    )))
    .unwrap();
    assert_eq!(doc["displayName"], "Shared User", "{doc}");
    assert_eq!(doc["emails"][0]["value"], "shared@corp.example", "{doc}");
    assert_eq!(
        doc["urn:userbridge:params:scim:schemas:extension:2.0:User"]["description"],
        "changed from three places",
        "{doc}"
    );
    // The version counts every one of the 15 writes, plus the create.
    assert_eq!(
        pg.psql(&format!("SELECT version FROM users WHERE numeric_id = {n}")),
        "16"
    );

    // 3. A load of creates spread over the three, one instance killed (-9) in the middle.
    const LOAD: usize = 240;
    let names: Vec<String> = (0..LOAD).map(|i| format!("load-{i:03}")).collect();
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, String>::new()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..12 {
        let (c, bases, names) = (c.clone(), bases.clone(), names.clone());
        let (outcomes, next) = (outcomes.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= names.len() {
                    break;
                }
                let base = &bases[(i + w) % 3];
                let got = match vc_create(&c, base, &names[i]).await {
                    Ok(s) => s.as_u16().to_string(),
                    Err(_) => "no answer".to_owned(),
                };
                outcomes.lock().unwrap().insert(names[i].clone(), got);
            }
        }));
    }
    while next.load(std::sync::atomic::Ordering::SeqCst) < LOAD / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = gws.pop().unwrap();
    common::binary::signal(victim.child.id(), "-KILL");
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let answered: BTreeSet<&String> = outcomes
        .iter()
        .filter(|(_, s)| *s == "200")
        .map(|(n, _)| n)
        .collect();
    let unanswered: Vec<&String> = outcomes
        .iter()
        .filter(|(_, s)| *s != "200")
        .map(|(n, _)| n)
        .collect();
    assert!(
        outcomes.values().all(|s| s == "200" || s == "no answer"),
        "{outcomes:?}"
    );
    // Every acknowledged create is in the database, once.
    let stored: BTreeSet<String> = pg
        .psql("SELECT user_name FROM users WHERE user_name LIKE 'load-%'")
        .lines()
        .map(str::to_owned)
        .collect();
    for n in &answered {
        assert!(
            stored.contains(*n),
            "{n} was acknowledged and is not stored"
        );
    }
    // A client retries what got no answer, through a survivor: each is either written now
    // (200) or was written by the killed instance before it died (409) — never twice.
    let mut written_before_the_kill = 0;
    for n in &unanswered {
        match vc_create(&c, &bases[0], n).await.unwrap() {
            StatusCode::OK => {}
            StatusCode::CONFLICT => written_before_the_kill += 1,
            s => panic!("{n}: {s}"),
        }
    }
    let count = pg.psql("SELECT count(*) FROM users WHERE user_name LIKE 'load-%'");
    assert_eq!(count, LOAD.to_string(), "0 lost");
    let doubled = pg.psql(
        "SELECT count(*) FROM (SELECT lower(user_name) FROM users GROUP BY 1 HAVING count(*) > 1) d",
    );
    assert_eq!(doubled, "0", "0 doubled");
    let ids = pg.psql(
        "SELECT count(DISTINCT numeric_id) = count(*) AND count(DISTINCT id) = count(*) FROM users",
    );
    assert_eq!(ids, "t", "numeric ids and ids are unique across instances");
    eprintln!(
        "load: {LOAD} creates over 3 instances, one killed: {} answered, {} retried ({written_before_the_kill} of them written before the kill)",
        answered.len(),
        unanswered.len()
    );
    drop(victim);
}

/// A gateway started before its database: it serves, `/readyz` answers 503 naming the
/// backend, writes get 503; once the database is up it becomes ready by itself. A database
/// that goes away is the same 503, and it recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_waits_for_its_database_and_recovers_when_it_returns() {
    let pg = Postgres::unstarted();
    let gw = instance(&pg);
    let c = Client::new();
    let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("postgres"), "{text}");
    assert_eq!(
        vc_create(&c, &gw.base, "early").await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    pg.start_server();
    let ready = |c: Client, base: String| async move {
        for _ in 0..100 {
            let r = c.get(format!("{base}/readyz")).send().await.unwrap();
            if r.status() == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        ready(c.clone(), gw.base.clone()).await,
        "ready once the database is up"
    );
    assert_eq!(vc_create(&c, &gw.base, "first").await.unwrap(), 200);

    // The database goes away: 503, not a hang and not a 500.
    pg.stop_server();
    let s = vc_create(&c, &gw.base, "during").await.unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // It comes back: the same process serves again.
    pg.start_server();
    assert!(ready(c.clone(), gw.base.clone()).await, "ready again");
    assert_eq!(vc_create(&c, &gw.base, "after").await.unwrap(), 200);
    let names = pg.psql("SELECT string_agg(user_name, ',' ORDER BY numeric_id) FROM users");
    assert_eq!(
        names, "first,after",
        "nothing half-written while it was away"
    );
}

/// `Idempotency-Key`s live in the shared database: a client's retry that the load balancer
/// sends to another instance gets the first answer again, not a second write, and the key
/// with another body is refused there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_sent_to_another_instance_gets_the_first_answer() {
    let pg = Postgres::start();
    let (a, b) = (instance(&pg), instance(&pg));
    let c = Client::new();
    let send = |base: String, key: &'static str, name: &'static str| {
        let c = c.clone();
        async move {
            c.put(format!("{base}/user-service/v1/user"))
                .header("Authorization", VC)
                .header("Idempotency-Key", key)
                .json(&json!({"userKey": {"username": name, "authenticator": "LOCAL"}}))
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(a.base.clone(), "k-1", "idem-pg").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();
    let again = send(b.base.clone(), "k-1", "idem-pg").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);
    let other = send(b.base.clone(), "k-1", "idem-pg-2").await;
    assert_eq!(other.status(), 400);

    // The same key at once through both: one write; the other is told it runs, or replayed.
    let (x, y) = tokio::join!(
        send(a.base.clone(), "k-2", "idem-race"),
        send(b.base.clone(), "k-2", "idem-race")
    );
    let mut statuses = [x.status().as_u16(), y.status().as_u16()];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 200] || statuses == [200, 409],
        "{statuses:?}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name IN ('idem-pg', 'idem-race')"),
        "2"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM idempotency_keys WHERE status = 200"),
        "2",
        "both answers kept"
    );
}

/// A mirror whose primary is the shared database: its queue is there too, and every
/// instance's worker copies from it. One instance is killed (`kill -9`) while writes flow; the
/// survivors drain the queue, and the shadow (a live `scim2-server`) ends with every user the
/// primary has, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_on_postgres_is_drained_by_the_survivors() {
    let pg = Postgres::start();
    let shadow = common::peers::ScimServer::start().await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut gws: Vec<Running> = dirs
        .iter()
        .map(|d| {
            let more = format!(
                "\n[backends.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\
                 \n[backends.shadow]\nkind = \"scim\"\nurl = \"{}\"\nindex = \"{}\"\n",
                pg.url,
                shadow.url,
                d.path().join("scim-index.db").display()
            );
            let backend = format!(
                "kind = \"mirror\"\nprimary = \"pg\"\nshadow = \"shadow\"\nqueue = \"{}\"\n",
                d.path().join("unused-queue.db").display()
            );
            instance_with(&pg, backend, &more)
        })
        .collect();
    let bases: Vec<String> = gws.iter().map(|g| g.base.clone()).collect();
    let c = Client::new();
    const N: usize = 90;
    let mut acked = Vec::new();
    let mut pending = Vec::new();
    for i in 0..N {
        let name = format!("mirrored-{i:03}");
        let base = bases[i % bases.len()].clone();
        let c = c.clone();
        pending.push(tokio::spawn(async move {
            (name.clone(), vc_create(&c, &base, &name).await)
        }));
        if i == N / 3 {
            // Mid-stream, one instance dies with whatever it was copying.
            let victim = gws.pop().unwrap();
            common::binary::signal(victim.child.id(), "-KILL");
            drop(victim);
        }
    }
    for p in pending {
        let (name, r) = p.await.unwrap();
        match r {
            Ok(s) if s == StatusCode::OK => acked.push(name),
            Ok(s) => panic!("{name}: {s}"),
            // The killed instance's requests: retried through a survivor.
            Err(_) => match vc_create(&c, &bases[0], &name).await.unwrap() {
                StatusCode::OK | StatusCode::CONFLICT => acked.push(name),
                s => panic!("{name}: {s}"),
            },
        }
    }
    assert_eq!(acked.len(), N);
    // The survivors drain the queue.
    let mut drained = false;
    for _ in 0..300 {
        if pg.psql("SELECT count(*) FROM mirror_pending") == "0" {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        drained,
        "queue left: {}",
        pg.psql("SELECT count(*) FROM mirror_pending")
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM mirror_dead"),
        "0",
        "{}",
        pg.psql("SELECT error FROM mirror_dead")
    );
    // Every user of the primary is on the shadow, once.
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name LIKE 'mirrored-%'"),
        N.to_string()
    );
    for name in &acked {
        let list: Value = c
            .get(format!(
                "{}/Users?filter=userName%20eq%20%22{name}%22",
                shadow.url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["totalResults"], 1, "{name} on the shadow: {list}");
    }
}
