//! The scenarios: watchers that stall, watchers that idle, and the heavy entries they watch.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;
use pb::lead_service_client::LeadServiceClient;
use tonic::transport::Channel;

use crate::Args;
use crate::server::{ScratchDatabase, Server};

/// Streams opened concurrently (the server's default limit on calls in progress is 512).
const OPEN_AT_ONCE: usize = 64;

/// A submission whose audit entry weighs about 30 KB: a hundred signals with long subjects.
fn heavy_submission(i: usize) -> pb::SubmitLeadRequest {
    pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: format!("soak-{i}@example.com"),
            ..Default::default()
        }),
        source: Some(pb::Source {
            channel: pb::SourceChannel::Content as i32,
            campaign: "soak".into(),
        }),
        events: (0..100)
            .map(|e| pb::EngagementEvent {
                kind: pb::EngagementKind::ContentDownload as i32,
                occur_time: None,
                subject: format!("{e:03}{}", "s".repeat(197)),
            })
            .collect(),
        ..Default::default()
    }
}

/// Writes `entries` heavy leads from 8 callers and waits until they are chained.
async fn seed(server: &Server, entries: usize) {
    let channel = server.channel().await.unwrap();
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let mut client = LeadServiceClient::new(channel.clone());
            tokio::spawn(async move {
                for i in (caller..entries).step_by(8) {
                    client
                        .submit_lead(heavy_submission(i))
                        .await
                        .expect("a seeded lead");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let mut audit = AuditServiceClient::new(channel);
    let started = Instant::now();
    loop {
        let head = audit
            .get_audit_digest(pb::GetAuditDigestRequest::default())
            .await
            .unwrap()
            .into_inner();
        if head.position > entries as i64 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the entries are chained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `watchers` streams over `connections` connections; returns them unread.
async fn open_watchers(
    server: &Server,
    watchers: usize,
    connections: usize,
    request: pb::WatchDecisionsRequest,
) -> (Vec<Channel>, Vec<tonic::Streaming<pb::WatchDecisionsResponse>>) {
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(server.channel().await.unwrap());
    }
    let mut streams = Vec::new();
    // A few at a time, so that opening them stays under the server's limit on calls.
    for batch in (0..watchers).collect::<Vec<_>>().chunks(OPEN_AT_ONCE) {
        let opening: Vec<_> = batch
            .iter()
            .map(|w| {
                let mut client = AuditServiceClient::new(channels[w % connections].clone());
                let request = request.clone();
                tokio::spawn(async move { client.watch_decisions(request).await })
            })
            .collect();
        for open in opening {
            streams.push(open.await.unwrap().expect("a watch stream").into_inner());
        }
    }
    (channels, streams)
}

pub async fn stalled(args: &Args, bin: &PathBuf, watchers: usize, entries: usize, hold: Duration) {
    let db = ScratchDatabase::create(args).await;
    let server = Server::start(bin, &db.url, watchers.max(512)).await;
    eprintln!("writing {entries} entries of ~30 KB");
    seed(&server, entries).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.rss_mib();
    println!("server RSS before the watchers: {before:.1} MiB");

    eprintln!("opening {watchers} watchers that never read (one connection each)");
    let (channels, streams) =
        open_watchers(&server, watchers, watchers, pb::WatchDecisionsRequest::default()).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < hold {
        tokio::time::sleep(Duration::from_secs(5).min(hold)).await;
        samples.push((started.elapsed().as_secs(), server.rss_mib()));
    }
    let series: Vec<String> = samples.iter().map(|(s, rss)| format!("{s}s {rss:.1}")).collect();
    println!(
        "server RSS while {watchers} watchers stall (MiB): {}",
        series.join(", ")
    );
    println!("server peak RSS: {:.1} MiB", server.peak_rss_mib());
    drop(streams);
    drop(channels);
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "server RSS 5 s after the watchers left: {:.1} MiB",
        server.rss_mib()
    );
    drop(server);
    db.drop_now().await;
}

pub async fn idle(args: &Args, bin: &PathBuf, watchers: usize, connections: usize, period: Duration) {
    let db = ScratchDatabase::create(args).await;
    let server = Server::start(bin, &db.url, watchers.max(512)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("the server alone for {period:?}");
    let (cpu, rss) = cpu_over(&server, period).await;
    println!(
        "server without watchers: {cpu:.2} s of CPU in {:.0} s ({:.1}% of a core), RSS {rss:.1} MiB",
        period.as_secs_f64(),
        100.0 * cpu / period.as_secs_f64()
    );

    eprintln!("opening {watchers} watchers at the head over {connections} connections");
    let request = pb::WatchDecisionsRequest {
        from_head: true,
        ..Default::default()
    };
    let (channels, streams) = open_watchers(&server, watchers, connections, request).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("{watchers} idle watchers for {period:?}");
    let (cpu, rss) = cpu_over(&server, period).await;
    println!(
        "server with {watchers} idle watchers: {cpu:.2} s of CPU in {:.0} s ({:.1}% of a core), RSS {rss:.1} MiB",
        period.as_secs_f64(),
        100.0 * cpu / period.as_secs_f64()
    );
    drop(streams);
    drop(channels);
    drop(server);
    db.drop_now().await;
}

/// The server's CPU time over `period`, and its RSS at the end.
async fn cpu_over(server: &Server, period: Duration) -> (f64, f64) {
    let before = server.cpu_seconds();
    tokio::time::sleep(period).await;
    (server.cpu_seconds() - before, server.rss_mib())
}
