//! The scenarios on one backend: health checks, SubmitLead (new leads, resubmissions, replays),
//! RecordEngagement, GetLead (in turns with its baselines) and a mix, then a restart; and the
//! calls they make. Write scenarios also sample the audit sequencer's lag (`lag`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use leadgate::grpc::pb;
use pb::lead_service_client::LeadServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::Args;
use crate::baselines::pgbench::{self, settle};
use crate::baselines::{Template, sqlite};
use crate::measure::{Figures, Samples, drive, measured, measured_writes, sample, summarize};
use crate::servers::{Scratch, Server};

fn submission(worker: usize, iteration: u64, run: u64) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: format!("bench-{run}-{worker}-{iteration}@acme-industrie.fr"),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: "+33 1 23 45 67 89".into(),
            job_title: "Directrice financière".into(),
            seniority: pb::Seniority::Executive as i32,
            job_function: "finance".into(),
        }),
        company: Some(pb::Company {
            name: "Acme Industrie".into(),
            domain: "acme-industrie.fr".into(),
            industry: "manufacturing".into(),
            employee_count: 300,
            country_code: "FR".into(),
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Website as i32,
            campaign: "bench".into(),
        }),
        external_reference: format!("crm-{worker}-{iteration}"),
        events: vec![pb::EngagementEvent {
            kind: pb::EngagementKind::WebinarAttended as i32,
            occur_time: None,
            subject: "webinar".into(),
        }],
        request_id: format!("bench-{run}-{worker}-{iteration}"),
    }
}

/// Lead names, read back from the server (the workload of reads and updates).
async fn lead_names(channel: &Channel, at_most: usize) -> Vec<String> {
    let mut client = LeadServiceClient::new(channel.clone());
    let (mut names, mut token) = (Vec::new(), String::new());
    while names.len() < at_most {
        let page = client
            .list_leads(pb::ListLeadsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.leads.into_iter().map(|l| l.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    names
}

pub struct BackendResults {
    pub name: &'static str,
    /// The bare tonic server answering health checks, measured in turns with this backend's
    /// GetLead (same conditions).
    pub bare: Figures,
    /// The bare tonic server answering GetLead with a canned copy of a real lead, in turns too.
    pub bare_get: Figures,
    /// leadgate's own health check: the per-call cost of the server without the database.
    pub health: Figures,
    pub submit: Figures,
    pub engage: Figures,
    pub get: Figures,
    pub mixed: Figures,
    pub first_start: Duration,
    pub restart: Duration,
    /// The database's own write of new leads, one per transaction and batched (SubmitLead's
    /// baselines: pgbench on PostgreSQL, one SQLite writer on SQLite), with the clients pgbench
    /// ran (None on SQLite).
    pub writes: Option<WriteBaselines>,
    /// SubmitLead of emails already known, under new request ids (a resubmission is recorded).
    pub resubmit: Figures,
    /// SubmitLead repeating requests already answered (the stored answer is replayed).
    pub replay: Figures,
}

/// SubmitLead's baselines on one backend: the database writing the same rows, one lead per
/// transaction and [`pgbench::BATCH`] per transaction (rates in writes per second).
pub struct WriteBaselines {
    pub one: Result<Figures, String>,
    pub batched: Result<Figures, String>,
    /// pgbench's clients (leadgate's pool size); None for SQLite's single writer.
    pub clients: Option<u32>,
}

/// SubmitLead's baselines on `name`'s database (a real lead's documents from leadgate's database
/// at `url`; the writes go to scratch databases).
async fn write_baselines(name: &str, url: &str, args: &Args) -> WriteBaselines {
    let failed = |e: String| WriteBaselines {
        one: Err(e.clone()),
        batched: Err(e),
        clients: None,
    };
    let template = match Template::read(url).await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    if name == "PostgreSQL" {
        settle(url).await;
        eprintln!(
            "pgbench: leadgate's write of a new lead, one and {} per transaction",
            pgbench::BATCH
        );
        match pgbench::pgbench(&args.postgres, &template, args).await {
            Ok(b) => WriteBaselines {
                one: b.one,
                batched: b.batched,
                clients: Some(b.clients),
            },
            Err(e) => failed(e),
        }
    } else {
        eprintln!(
            "SQLite: the store's write of a new lead, one and {} per transaction",
            pgbench::BATCH
        );
        let b = sqlite::sqlite_baselines(&template, args).await;
        WriteBaselines {
            one: b.one,
            batched: b.batched,
            clients: None,
        }
    }
}

pub async fn run_backend(name: &'static str, url: &str, args: &Args, run: u64) -> BackendResults {
    let (c, w, d) = (args.concurrency, args.warmup, args.duration);
    let started = Instant::now();
    let server = Server::leadgate(url);
    let first_start = server.serving(started).await;
    let channels = server.channels(4).await;
    let wanted = |scenario: &str| args.only.iter().any(|o| o == scenario);
    eprintln!("{name}: health checks");
    let health = if !wanted("health") {
        Figures::default()
    } else {
        measured(&server, drive(&channels, c, w, d, health_check)).await
    };
    if name == "PostgreSQL" && wanted("submit") {
        settle(url).await; // as before pgbench
    }
    eprintln!("{name}: SubmitLead");
    // Without the scenario, a short unmeasured run still creates the leads the others use.
    let seed = if wanted("submit") {
        d
    } else {
        Duration::from_secs(2)
    };
    // The sequencer chains what SubmitLead wrote; the baselines start once it is done.
    let submit = measured_writes(
        &server,
        url,
        w,
        drive(&channels, c, w, seed, move |ch, worker, i| async move {
            LeadServiceClient::new(ch)
                .submit_lead(submission(worker, i, run))
                .await
                .map(|_| ())
        }),
    )
    .await;
    // The baselines right after SubmitLead, on scratch databases, with no server attached.
    let writes = if wanted("submit") {
        let baselines = write_baselines(name, url, args).await;
        if name == "PostgreSQL" {
            settle(url).await;
        }
        Some(baselines)
    } else {
        None
    };
    // The first KNOWN submissions of each worker exist by now (SubmitLead ran at least that
    // long, even unmeasured).
    const KNOWN: u64 = 8;
    eprintln!("{name}: SubmitLead of known emails (resubmissions)");
    let resubmit = if !wanted("resubmit") {
        Figures::default()
    } else {
        measured_writes(
            &server,
            url,
            w,
            drive(&channels, c, w, d, move |ch, worker, i| async move {
                let mut again = submission(worker, i % KNOWN, run);
                again.request_id = format!("resubmit-{run}-{worker}-{i}");
                LeadServiceClient::new(ch).submit_lead(again).await.map(|_| ())
            }),
        )
        .await
    };
    eprintln!("{name}: SubmitLead of requests already answered (replays)");
    let replay = if !wanted("replay") {
        Figures::default()
    } else {
        measured(
            &server,
            drive(&channels, c, w, d, move |ch, worker, i| async move {
                LeadServiceClient::new(ch)
                    .submit_lead(submission(worker, i % KNOWN, run))
                    .await
                    .map(|_| ())
            }),
        )
        .await
    };
    let names = Arc::new(lead_names(&channels[0], 20_000).await);
    eprintln!("{name}: RecordEngagement on {} leads", names.len());
    let engage = if !wanted("engage") {
        Figures::default()
    } else {
        let names = names.clone();
        measured_writes(
            &server,
            url,
            w,
            drive(&channels, c, w, d, move |ch, worker, i| {
                let name = names[(worker * 7919 + i as usize * 31) % names.len()].clone();
                async move {
                    let events = vec![pb::EngagementEvent {
                        kind: pb::EngagementKind::PricingPageVisit as i32,
                        occur_time: None,
                        subject: String::new(),
                    }];
                    LeadServiceClient::new(ch)
                        .record_engagement(pb::RecordEngagementRequest {
                            name,
                            events,
                            // As callers are told to: a retry is answered, not applied twice.
                            request_id: format!("engage-{run}-{worker}-{i}"),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                }
            }),
        )
        .await
    };
    eprintln!("{name}: GetLead, taking turns with the bare tonic servers");
    let (bare, bare_get, get) = if wanted("get") {
        get_with_baselines(args, &server, &channels, names.clone()).await
    } else {
        Default::default()
    };
    eprintln!("{name}: mixed");
    let mixed = if !wanted("mixed") {
        Figures::default()
    } else {
        let names = names.clone();
        measured_writes(
            &server,
            url,
            w,
            drive(&channels, c, w, d, move |ch, worker, i| {
                let name = names[(worker * 7919 + i as usize * 17) % names.len()].clone();
                async move {
                    let mut client = LeadServiceClient::new(ch);
                    match i % 20 {
                        0..=11 => client.get_lead(pb::GetLeadRequest { name }).await.map(|_| ()),
                        12..=15 => {
                            let events = vec![pb::EngagementEvent {
                                kind: pb::EngagementKind::EmailClick as i32,
                                occur_time: None,
                                subject: String::new(),
                            }];
                            client
                                .record_engagement(pb::RecordEngagementRequest {
                                    name,
                                    events,
                                    request_id: format!("mixed-engage-{run}-{worker}-{i}"),
                                    ..Default::default()
                                })
                                .await
                                .map(|_| ())
                        }
                        16..=18 => client
                            .submit_lead(submission(worker, i, run + 1))
                            .await
                            .map(|_| ()),
                        _ => client
                            .list_leads(pb::ListLeadsRequest {
                                page_size: 50,
                                ..Default::default()
                            })
                            .await
                            .map(|_| ()),
                    }
                }
            }),
        )
        .await
    };
    drop(channels);
    drop(server);
    let started = Instant::now();
    let again = Server::leadgate(url);
    let restart = again.serving(started).await;
    BackendResults {
        name,
        bare,
        bare_get,
        health,
        submit,
        engage,
        get,
        mixed,
        first_start,
        restart,
        writes,
        resubmit,
        replay,
    }
}

/// One gRPC health check (the call of the health scenarios).
pub async fn health_check(channel: Channel, _: usize, _: u64) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

/// One GetLead.
async fn get_lead(channel: Channel, name: String) -> Result<(), tonic::Status> {
    LeadServiceClient::new(channel)
        .get_lead(pb::GetLeadRequest { name })
        .await
        .map(|_| ())
}

/// Turns in which GetLead and its baselines are measured one after the other, so that drift in
/// the machine's speed (other processes, CPU frequency, neighbours) weighs on all three alike.
const TURNS: u32 = 5;

/// GetLead on leadgate, and its two baselines: a bare tonic server answering health checks, and
/// one answering GetLead with a canned copy of a real lead (gRPC itself, with the same request and
/// response bytes). The three take `TURNS` turns each; returns (bare health, bare GetLead, GetLead).
async fn get_with_baselines(
    args: &Args,
    server: &Server,
    channels: &[Channel],
    names: Arc<Vec<String>>,
) -> (Figures, Figures, Figures) {
    use prost::Message;
    let lead = LeadServiceClient::new(channels[0].clone())
        .get_lead(pb::GetLeadRequest {
            name: names[0].clone(),
        })
        .await
        .expect("a seeded lead")
        .into_inner();
    let dir = Scratch::new("lead");
    let path = dir.0.join("lead.pb");
    std::fs::write(&path, lead.encode_to_vec()).expect("the canned lead written");
    let bare = Server::bare(None);
    let bare_get = Server::bare(Some(&path));
    bare.serving(Instant::now()).await;
    bare_get.serving(Instant::now()).await;
    let (bare_channels, bare_get_channels) = (bare.channels(4).await, bare_get.channels(4).await);

    let canned = lead.name.clone();
    let get_canned = move |ch: Channel, _: usize, _: u64| get_lead(ch, canned.clone());
    let get = move |ch: Channel, worker: usize, i: u64| {
        get_lead(
            ch,
            names[(worker * 104_729 + i as usize * 13) % names.len()].clone(),
        )
    };
    let (c, warmup, turn) = (args.concurrency, args.warmup / TURNS, args.duration / TURNS);
    let mut totals: [Samples; 3] = Default::default();
    for _ in 0..TURNS {
        totals[0].add(sample(&bare_channels, c, warmup, turn, health_check).await);
        totals[1].add(sample(&bare_get_channels, c, warmup, turn, get_canned.clone()).await);
        totals[2].add(sample(channels, c, warmup, turn, get.clone()).await);
    }
    let measured = turn * TURNS;
    let [h, g, l] = totals.map(|t| summarize(t.latencies, t.errors, measured));
    let with_rss = |mut f: Figures, s: &Server| {
        f.rss_mib = Some(s.peak_rss_mib());
        f
    };
    (with_rss(h, &bare), with_rss(g, &bare_get), with_rss(l, server))
}
