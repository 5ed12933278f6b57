//! The fault suite: leadgate under crashes, database restarts and shutdowns. Slow and disruptive
//! (it kills processes and restarts the local PostgreSQL), so it is opt-in:
//!
//! ```sh
//! LEADGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo test --test faults -- --ignored --test-threads=1
//! ```

#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "the fault suite uses part of the API suite's helpers")]
mod helpers;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helpers::{Backend, TestDatabase, cfo_demo_request, eventually, free_port, wait_for_exit};
use leadgate::grpc::pb;
use pb::lead_service_client::LeadServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

/// The ids of every stored lead.
async fn stored_lead_ids(db: &TestDatabase) -> HashSet<uuid::Uuid> {
    use sqlx::Connection;
    let sql = "SELECT id FROM leads";
    let ids: Vec<uuid::Uuid> = if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    };
    ids.into_iter().collect()
}

/// A leadgate server process on a fixed port, so that it can be killed and started again.
struct Replica {
    port: u16,
    database_url: String,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Replica {
    fn new(database_url: &str, extra: &[&str]) -> Replica {
        let mut replica = Replica {
            port: free_port(),
            database_url: database_url.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        replica.start();
        replica
    }

    fn start(&mut self) {
        let child = Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--sweep-interval",
                "200ms",
            ])
            .args(&self.extra)
            .env("LEADGATE_DATABASE_URL", &self.database_url)
            .env("LEADGATE_AUDIT_KEYS", helpers::TEST_AUDIT_KEYS)
            .stdout(Stdio::null())
            // FAULT_LOG=1 shows the replicas' logs.
            .stderr(if std::env::var_os("FAULT_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL: no drain, no final sequencing
            let _ = child.wait();
        }
    }

    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy()
    }

    async fn health(&self) -> Option<ServingStatus> {
        let answer = HealthClient::new(self.channel())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        answer
            .ok()
            .and_then(|a| ServingStatus::try_from(a.into_inner().status).ok())
    }

    async fn wait_until_serving(&self) {
        let serving = eventually(Duration::from_secs(30), || async {
            self.health().await == Some(ServingStatus::Serving)
        })
        .await;
        assert!(serving, "the replica on port {} serves", self.port);
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a failed call may be retried: the server went away (no answer from leadgate, whose
/// every answer carries ErrorInfo) or said UNAVAILABLE.
fn retryable(status: &Status) -> bool {
    use tonic_types::StatusExt;
    status.code() == Code::Unavailable || status.get_details_error_info().is_none()
}

/// Submits until acknowledged, moving between replicas on failures that allow a retry; the
/// request id makes retries safe.
async fn submit_until_acknowledged(
    channels: &[Channel],
    request: pb::SubmitLeadRequest,
    start: usize,
) -> pb::SubmitLeadResponse {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempt = start;
    loop {
        let mut client = LeadServiceClient::new(channels[attempt % channels.len()].clone());
        match client.submit_lead(request.clone()).await {
            Ok(answer) => return answer.into_inner(),
            Err(status) if retryable(&status) && Instant::now() < deadline => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("a submission failed for good: {status:?}"),
        }
    }
}

fn lead_request(i: usize) -> pb::SubmitLeadRequest {
    let mut request = cfo_demo_request(&format!("fault-{i}@acme-industrie.fr"));
    request.request_id = format!("fault-{i}");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: cargo test --test faults -- --ignored --test-threads=1 (needs LEADGATE_TEST_POSTGRES_URL)"]
async fn killing_replicas_repeatedly_loses_no_acknowledged_lead() {
    const LEADS: usize = 2000;
    const CLIENTS: usize = 32;
    let db = TestDatabase::create(&Backend::postgres()).await;
    let replicas: Vec<Arc<Mutex<Replica>>> = (0..2)
        .map(|_| Arc::new(Mutex::new(Replica::new(&db.url, &[]))))
        .collect();
    let channels: Vec<Channel> = replicas.iter().map(|r| r.lock().unwrap().channel()).collect();
    for r in &replicas {
        let port = r.lock().unwrap().port;
        let probe = Replica {
            port,
            database_url: String::new(),
            extra: vec![],
            child: None,
        };
        probe.wait_until_serving().await;
    }

    // A watcher follows the decisions from whichever replica is up, resuming from its cursor.
    let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop_watching = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (seen, channels, stop) = (seen.clone(), channels.clone(), stop_watching.clone());
        tokio::spawn(async move {
            let mut replica = 0;
            while !stop.is_cancelled() {
                let cursor = seen.lock().unwrap().last().copied().unwrap_or(0);
                let mut client =
                    pb::audit_service_client::AuditServiceClient::new(channels[replica % 2].clone());
                if let Ok(stream) = client
                    .watch_decisions(pb::WatchDecisionsRequest {
                        after_position: cursor,
                        ..Default::default()
                    })
                    .await
                {
                    let mut stream = stream.into_inner();
                    loop {
                        tokio::select! {
                            message = stream.message() => match message {
                                Ok(Some(m)) => seen.lock().unwrap().push(m.event.unwrap().position),
                                _ => break,
                            },
                            _ = stop.cancelled() => return,
                        }
                    }
                }
                replica += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // A killer takes one replica down with SIGKILL every 700 ms and starts it again.
    let stop_killing = tokio_util::sync::CancellationToken::new();
    let killer = {
        let (replicas, stop) = (replicas.clone(), stop_killing.clone());
        tokio::spawn(async move {
            let mut kills = 0;
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let victim = &replicas[kills % 2];
                victim.lock().unwrap().kill();
                tokio::time::sleep(Duration::from_millis(150)).await;
                victim.lock().unwrap().start();
                kills += 1;
            }
            kills
        })
    };

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let channels = channels.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in (c..LEADS).step_by(CLIENTS) {
                    let answer = submit_until_acknowledged(&channels, lead_request(i), c).await;
                    acknowledged.push(answer.lead.unwrap().name);
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    stop_killing.cancel();
    let kills = killer.await.unwrap();
    for r in &replicas {
        let mut replica = r.lock().unwrap();
        if replica.child.is_none() {
            replica.start();
        }
    }
    assert_eq!(
        acknowledged.len(),
        LEADS,
        "every submission acknowledged once, as one lead"
    );
    assert!(kills >= 3, "replicas were killed {kills} times");
    eprintln!("{LEADS} leads acknowledged across {kills} kills");

    // Everything acknowledged is there exactly once, each with its entry, and the chain holds.
    db.wait_until_chained().await;
    let acknowledged_ids: HashSet<uuid::Uuid> =
        acknowledged.iter().map(|name| helpers::lead_uuid(name)).collect();
    assert_eq!(
        stored_lead_ids(&db).await,
        acknowledged_ids,
        "the stored leads are exactly the acknowledged ones"
    );
    assert_eq!(db.entries_of_kind("LEAD_SUBMITTED").await, LEADS as i64);
    let without_entry =
        "SELECT COUNT(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.lead_id = l.id)";
    assert_eq!(db.count(without_entry).await, 0, "every lead has its audit entry");
    let head = db.count("SELECT COALESCE(MAX(position), 0) FROM audit_log").await;
    let mut audit = pb::audit_service_client::AuditServiceClient::new(channels[0].clone());
    let verification = loop {
        match audit
            .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
            .await
        {
            Ok(v) => break v.into_inner(),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.verified_count, head);

    // The stream saw every entry once, in order, across the kills.
    let caught_up = eventually(Duration::from_secs(30), || async {
        seen.lock().unwrap().last().copied() == Some(head)
    })
    .await;
    stop_watching.cancel();
    watcher.await.unwrap();
    assert!(caught_up, "the watcher reached the head {head}");
    let positions = seen.lock().unwrap().clone();
    assert_eq!(
        positions,
        (1..=head).collect::<Vec<_>>(),
        "every entry once, in order"
    );
}

/// Runs `pg_ctlcluster <version> main <action...>` on the local cluster.
async fn pg_ctlcluster(action: &'static [&'static str]) {
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let status = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", version.to_str().unwrap(), "main"])
            .args(action)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "pg_ctlcluster {action:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: cargo test --test faults -- --ignored --test-threads=1 (restarts the local PostgreSQL)"]
async fn a_postgres_crash_under_load_only_fails_calls_with_unavailable_and_loses_nothing() {
    let db = TestDatabase::create(&Backend::postgres()).await;
    let mut replica = Replica::new(&db.url, &[]);
    replica.wait_until_serving().await;
    let channel = replica.channel();

    let stop = tokio_util::sync::CancellationToken::new();
    let failures = Arc::new(Mutex::new(Vec::<Status>::new()));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (channel, stop, failures) = (channel.clone(), stop.clone(), failures.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut i = c;
                while !stop.is_cancelled() {
                    let request = lead_request(1_000_000 + i);
                    match LeadServiceClient::new(channel.clone()).submit_lead(request).await {
                        Ok(answer) => {
                            let name = answer.into_inner().lead.unwrap().name;
                            // Read it back (the batched reads keep a connection across calls).
                            while !stop.is_cancelled() {
                                let read = LeadServiceClient::new(channel.clone())
                                    .get_lead(pb::GetLeadRequest { name: name.clone() })
                                    .await;
                                match read {
                                    Ok(_) => break,
                                    Err(status) => {
                                        failures.lock().unwrap().push(status);
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                    }
                                }
                            }
                            acknowledged.push(name);
                            i += 8;
                        }
                        // The same request again (same id) until it is acknowledged.
                        Err(status) => {
                            failures.lock().unwrap().push(status);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();

    // Readiness, sampled every 100 ms.
    let readiness = Arc::new(Mutex::new(Vec::<(Instant, Option<ServingStatus>)>::new()));
    let sampler = {
        let (readiness, stop) = (readiness.clone(), stop.clone());
        let probe = Replica {
            port: replica.port,
            database_url: String::new(),
            extra: vec![],
            child: None,
        };
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let status = probe.health().await;
                readiness.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    // A crash (no checkpoint, no goodbye to clients: recovery from the WAL at the next start),
    // down for three seconds, longer than a readiness period, then up again.
    pg_ctlcluster(&["stop", "-m", "immediate"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg_ctlcluster(&["start"]).await;
    let database_back = Instant::now();
    let ready_again = eventually(Duration::from_secs(10), || async {
        readiness
            .lock()
            .unwrap()
            .last()
            .is_some_and(|(at, s)| *at > database_back && *s == Some(ServingStatus::Serving))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    sampler.await.unwrap();

    assert!(replica.exited().is_none(), "the process never exits");
    assert!(ready_again, "SERVING again within 10 s of the database's return");
    let samples = readiness.lock().unwrap().clone();
    assert!(
        samples.iter().any(|(_, s)| *s == Some(ServingStatus::NotServing)),
        "readiness went NOT_SERVING while the database was away"
    );
    let failures = failures.lock().unwrap().clone();
    let back_after = samples
        .iter()
        .find(|(at, s)| *at > database_back && *s == Some(ServingStatus::Serving))
        .map(|(at, _)| *at - database_back);
    eprintln!(
        "{} acknowledged, {} failed calls, SERVING {back_after:?} after the database returned",
        acknowledged.len(),
        failures.len()
    );
    assert!(!failures.is_empty(), "the restart was felt");
    for status in failures.iter() {
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "only UNAVAILABLE, never UNKNOWN or INTERNAL: {status:?}"
        );
    }
    assert!(!acknowledged.is_empty());
    assert_eq!(db.leads().await, acknowledged.len() as i64, "no lead twice");
    let stored = stored_lead_ids(&db).await;
    for name in &acknowledged {
        let read = LeadServiceClient::new(channel.clone())
            .get_lead(pb::GetLeadRequest { name: name.clone() })
            .await;
        assert!(
            read.is_ok(),
            "{name} readable after the database returned: {read:?}"
        );
    }
    let acknowledged: HashSet<uuid::Uuid> =
        acknowledged.iter().map(|name| helpers::lead_uuid(name)).collect();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged lead, once; nothing else"
    );
    // The inbox drains and the trail verifies after the crash.
    db.wait_until_chained().await;
    assert_eq!(db.entries_of_kind("LEAD_SUBMITTED").await, stored.len() as i64);
    let verification = pb::audit_service_client::AuditServiceClient::new(channel.clone())
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verification.ok, "{verification:?}");
    assert_eq!(
        verification.verified_count,
        db.count("SELECT COUNT(*) FROM audit_log").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: cargo test --test faults -- --ignored --test-threads=1"]
async fn sqlite_killed_during_writes_fifty_times_stays_intact() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut acknowledged = Vec::new();
    for round in 0..50 {
        let mut replica = Replica::new(&db.url, &[]);
        replica.wait_until_serving().await;
        let channel = replica.channel();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let channel = channel.clone();
                let first = round * 1_000_000 + w;
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut i = first;
                    loop {
                        match LeadServiceClient::new(channel.clone())
                            .submit_lead(lead_request(100_000_000 + i))
                            .await
                        {
                            Ok(answer) => done.push(answer.into_inner().lead.unwrap().name),
                            Err(_) => return done,
                        }
                        i += 4;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + (round * 37 % 250) as u64)).await;
        replica.kill();
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
    }
    assert!(
        acknowledged.len() > 100,
        "writes were acknowledged ({})",
        acknowledged.len()
    );

    let check: String = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(check, "ok");
    let stored = stored_lead_ids(&db).await;
    let missing = acknowledged
        .iter()
        .filter(|name| !stored.contains(&helpers::lead_uuid(name)))
        .count();
    assert_eq!(missing, 0, "every acknowledged lead survives the kills");
    eprintln!(
        "{} leads acknowledged across 50 kills, {} stored",
        acknowledged.len(),
        stored.len()
    );
    assert_eq!(
        db.entries_of_kind("LEAD_SUBMITTED").await,
        db.leads().await,
        "every lead has its entry"
    );

    // A last start chains what the kills left in the inbox, and the chain verifies.
    let replica = Replica::new(&db.url, &[]);
    replica.wait_until_serving().await;
    db.wait_until_chained().await;
    let mut audit = pb::audit_service_client::AuditServiceClient::new(replica.channel());
    let verification = audit
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verification.ok, "{verification:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: cargo test --test faults -- --ignored --test-threads=1"]
async fn sigterm_with_calls_in_flight_drains_them_and_exits_zero() {
    use sqlx::{Connection, Executor};
    use tokio_stream::StreamExt;
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut replica = Replica::new(&db.url, &["--drain-timeout", "10s"]);
    replica.wait_until_serving().await;
    let channel = replica.channel();

    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    // Hold the database so the calls stay in flight.
    let mut lock = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    lock.execute("BEGIN IMMEDIATE").await.unwrap();
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move {
                LeadServiceClient::new(channel)
                    .submit_lead(lead_request(3_000_000 + i))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = replica.child.as_ref().unwrap().id();
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), watch.next())
        .await
        .expect("readiness changes at once");
    assert_eq!(next.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "NOT_SERVING at once: {:?}",
        signalled.elapsed()
    );
    drop(watch);

    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.execute("ROLLBACK").await.unwrap();
    for call in calls {
        call.await.unwrap().expect("a call in flight at SIGTERM finishes");
    }
    // Within the drain timeout.
    let child = replica.child.as_mut().expect("a started replica");
    let status = wait_for_exit(child, signalled, Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(db.leads().await, 5);
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs (the fault suite runs as root)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: cargo test --test faults -- --ignored --test-threads=1 (mounts a tmpfs: root)"]
async fn a_full_disk_refuses_writes_loses_nothing_acknowledged_and_recovers_by_itself() {
    let disk = SmallDisk::mount("3m");
    // Room to free later, taken before the server starts.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 1024 * 1024]).unwrap();
    let db = TestDatabase::at_url(&format!("sqlite://{}", disk.path().join("leadgate.db").display()));
    let mut replica = Replica::new(&db.url, &[]);
    replica.wait_until_serving().await;
    let channel = replica.channel();

    // Writers go on until the disk has refused them for a while.
    let refusals = Arc::new(Mutex::new(Vec::<Status>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (channel, refusals) = (channel.clone(), refusals.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut first_refusal: Option<Instant> = None;
                let mut i = w;
                while first_refusal.is_none_or(|at| at.elapsed() < Duration::from_secs(2)) {
                    match LeadServiceClient::new(channel.clone())
                        .submit_lead(lead_request(200_000_000 + i))
                        .await
                    {
                        Ok(answer) => acknowledged.push(answer.into_inner().lead.unwrap().name),
                        Err(status) => {
                            first_refusal.get_or_insert_with(Instant::now);
                            refusals.lock().unwrap().push(status);
                        }
                    }
                    i += 8;
                    assert!(i < 8 * 200_000, "the disk never filled up");
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let refusals = refusals.lock().unwrap().clone();
    eprintln!(
        "{} leads acknowledged, {} refused once the disk was full",
        acknowledged.len(),
        refusals.len()
    );
    assert!(!acknowledged.is_empty());
    for status in &refusals {
        use tonic_types::StatusExt;
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(status.get_details_error_info().unwrap().reason, "STORAGE_FULL");
    }
    let stored = stored_lead_ids(&db).await;
    let missing = acknowledged
        .iter()
        .filter(|n| !stored.contains(&helpers::lead_uuid(n)))
        .count();
    assert_eq!(
        missing, 0,
        "leads acknowledged but not stored while the disk is full"
    );
    let not_ready = eventually(Duration::from_secs(10), || async {
        replica.health().await == Some(ServingStatus::NotServing)
    })
    .await;
    assert!(not_ready, "NOT_SERVING while the disk is full");

    // Space comes back: readiness and writes recover without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let ready = eventually(Duration::from_secs(15), || async {
        replica.health().await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(ready, "SERVING again once space is freed");
    let answer =
        submit_until_acknowledged(std::slice::from_ref(&channel), lead_request(299_999_999), 0).await;
    acknowledged.push(answer.lead.unwrap().name);

    // A crash and a restart lose nothing acknowledged, and the trail verifies.
    replica.kill();
    replica.start();
    replica.wait_until_serving().await;
    let stored = stored_lead_ids(&db).await;
    let acknowledged: HashSet<uuid::Uuid> = acknowledged.iter().map(|n| helpers::lead_uuid(n)).collect();
    assert_eq!(
        acknowledged.difference(&stored).count(),
        0,
        "every acknowledged lead survives the crash"
    );
    db.wait_until_chained().await;
    assert_eq!(db.entries_of_kind("LEAD_SUBMITTED").await, db.leads().await);
    let verification = pb::audit_service_client::AuditServiceClient::new(replica.channel())
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verification.ok, "{verification:?}");
    drop(replica);
}
