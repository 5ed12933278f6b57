//! What a stream may cost the server: a consumer that stops reading is ended and resumes without
//! gaps, open streams are limited apart from calls, idle streams wait for news instead of polling,
//! a stream whose reads cannot succeed ends, and silent connections are closed.

use std::time::{Duration, Instant};

use leadgate::grpc::pb;
use leadgate::server::Limits;
use pb::audit_service_client::AuditServiceClient;
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::contract;
use crate::helpers::*;

fn audit(channel: &Channel) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(channel.clone())
}

/// A submission whose audit entry weighs about 30 KB: a hundred signals with long subjects.
fn heavy_submission(i: usize) -> pb::SubmitLeadRequest {
    let mut request = minimal_submission(&format!("heavy{i}@example.com"));
    request.events = (0..100)
        .map(|e| pb::EngagementEvent {
            kind: pb::EngagementKind::ContentDownload as i32,
            occur_time: None,
            subject: format!("{e:03}{}", "s".repeat(197)),
        })
        .collect();
    request
}

/// A client that reads the way a stalled consumer does: HTTP/2 windows of 64 KiB.
async fn small_window_channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap()
}

/// The positions a stream delivers until it ends, and how it ends.
async fn read_to_the_end(
    stream: &mut tonic::Streaming<pb::WatchDecisionsResponse>,
) -> (Vec<i64>, tonic::Status) {
    let mut positions = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends instead of waiting forever");
        match next {
            Ok(Some(message)) => positions.push(message.event.unwrap().position),
            Ok(None) => panic!("the stream ended without a status after {positions:?}"),
            Err(status) => return (positions, status),
        }
    }
}

contract! {
    async fn a_stalled_watcher_is_ended_as_slow_and_resumes_from_its_position_without_gaps(backend: Backend) {
        let limits = Limits { slow_consumer_timeout: Duration::from_millis(300), ..Limits::default() };
        let app = spawn_app_with(&backend, Options { limits, ..Options::default() }).await;
        let total = 41; // the policy activation and 40 leads
        for i in 0..40 {
            app.leads.clone().submit_lead(heavy_submission(i)).await.unwrap();
        }
        app.db.wait_until_chained().await;

        let channel = small_window_channel(&app).await;
        let mut stream = audit(&channel).watch_decisions(pb::WatchDecisionsRequest::default()).await.unwrap().into_inner();
        // The consumer stalls: flow control stops the server, whose buffer fills and stays full.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let (first, end) = read_to_the_end(&mut stream).await;
        assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
        let info = end.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "SLOW_CONSUMER");
        let last = *first.last().expect("what was sent before the end is delivered");
        assert_eq!(info.metadata["resume_after_position"], last.to_string());
        assert!(end.message().contains(&format!("after_position = {last}")), "{}", end.message());
        assert_eq!(first, (1..=last).collect::<Vec<_>>(), "in order, without gaps");
        assert!(last < total, "only what fits in the buffers was sent ({last} of {total})");

        let mut resumed = audit(&channel)
            .watch_decisions(pb::WatchDecisionsRequest { after_position: last, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let mut rest = Vec::new();
        while rest.len() < (total - last) as usize {
            let message = tokio::time::timeout(Duration::from_secs(10), resumed.message()).await.unwrap().unwrap().unwrap();
            rest.push(message.event.unwrap().position);
        }
        assert_eq!(rest, (last + 1..=total).collect::<Vec<_>>(), "resumed where it ended, nothing skipped or repeated");
    }

    async fn the_stream_limit_refuses_one_more_stream_apart_from_calls_and_frees_a_slot_when_a_stream_ends(backend: Backend) {
        let limits = Limits { max_open_streams: 2, max_concurrent_calls: 1, ..Limits::default() };
        let app = spawn_app_with(&backend, Options { limits, ..Options::default() }).await;
        let open = || async {
            audit(&app.channel).watch_decisions(pb::WatchDecisionsRequest::default()).await
        };
        let mut first = open().await.unwrap().into_inner();
        let mut second = open().await.unwrap().into_inner();
        for stream in [&mut first, &mut second] {
            let entry = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
            assert_eq!(entry.event.unwrap().position, 1);
        }

        let refused = open().await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_eq!(error_reason(&refused), "TOO_MANY_STREAMS");
        audit(&app.channel)
            .get_audit_digest(pb::GetAuditDigestRequest::default())
            .await
            .expect("streams do not take the calls' slots");

        drop(first);
        let mut third = None;
        for _ in 0..100 {
            match open().await {
                Ok(stream) => {
                    third = Some(stream.into_inner());
                    break;
                }
                Err(status) => assert_eq!(error_reason(&status), "TOO_MANY_STREAMS"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut third = third.expect("a stream that ends gives its slot back");
        assert!(tokio::time::timeout(Duration::from_secs(5), third.message()).await.unwrap().unwrap().is_some());
        assert_eq!(error_reason(&open().await.unwrap_err()), "TOO_MANY_STREAMS", "and the limit still holds");
    }

    async fn a_watch_whose_reads_the_database_refuses_ends_with_the_error_instead_of_retrying(backend: Backend) {
        let app = spawn_app(&backend).await;
        app.db.wait_until_chained().await;
        app.db.try_execute("ALTER TABLE audit_log RENAME COLUMN actor TO renamed_actor").await.unwrap();
        let mut stream = audit(&app.channel).watch_decisions(pb::WatchDecisionsRequest::default()).await.unwrap().into_inner();
        let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the stream ends instead of retrying a query the database refuses");
        let status = end.expect_err("an error, not an entry");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(error_reason(&status), "INTERNAL");
    }
}

/// The next entry's position, within a few seconds.
async fn next_position(stream: &mut tonic::Streaming<pb::WatchDecisionsResponse>) -> i64 {
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an entry within 5 s")
        .unwrap()
        .expect("the stream goes on");
    message.event.unwrap().position
}

/// A watcher on replica B waits for news rather than polling: an entry that appears in the trail
/// without a notice is not read, until a notice (what a sequencer's commit sends) wakes it; and
/// entries chained through replica A reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn a_watcher_on_one_replica_is_woken_by_entries_chained_on_another_without_polling_postgres() {
    let a = spawn_app(&Backend::postgres()).await;
    let b = spawn_on(a.db.clone(), Options::default()).await;
    b.wait_until_serving().await;
    a.db.wait_until_chained().await;
    let mut stream = audit(&b.channel)
        .watch_decisions(pb::WatchDecisionsRequest {
            from_head: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    a.leads
        .clone()
        .submit_lead(minimal_submission("first@example.com"))
        .await
        .unwrap();
    assert_eq!(next_position(&mut stream).await, 2);

    // Entry 3 appears without a notice: a watcher that polled would find it.
    a.db.try_execute(
        "INSERT INTO audit_log (position, inbox_id, lead_id, kind, record_time, actor, request_id, state_before, \
         state_after, source_channel, policy_version, body, previous_hash, hash, record_time_max) \
         SELECT position + 1, -1, lead_id, kind, record_time, 'unannounced', request_id, state_before, state_after, \
         source_channel, policy_version, body, hash, hash, record_time_max FROM audit_log ORDER BY position DESC LIMIT 1",
    )
    .await
    .unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
    assert!(
        quiet.is_err(),
        "an idle watcher reads nothing without a notice: {quiet:?}"
    );

    a.db.try_execute("SELECT pg_notify('leadgate_chain_head', '3')")
        .await
        .unwrap();
    assert_eq!(next_position(&mut stream).await, 3, "woken by the notice");

    a.leads
        .clone()
        .submit_lead(minimal_submission("second@example.com"))
        .await
        .unwrap();
    assert_eq!(next_position(&mut stream).await, 4);
}

/// When its replica loses every database connection (the listener's too), a watcher goes on:
/// reads are retried, the listener reconnects and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "PostgreSQL skipped: set LEADGATE_TEST_POSTGRES_URL to run it"
)]
async fn a_watcher_goes_on_when_the_database_connections_are_cut_postgres() {
    let a = spawn_app(&Backend::postgres()).await;
    let b = spawn_on(a.db.clone(), Options::default()).await;
    b.wait_until_serving().await;
    let mut stream = audit(&b.channel)
        .watch_decisions(pb::WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_position(&mut stream).await, 1);

    let cut =
        a.db.count(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    assert!(
        cut >= 2,
        "both replicas' connections and listeners were cut ({cut})"
    );

    let submitted = eventually(Duration::from_secs(10), || async {
        a.leads
            .clone()
            .submit_lead(minimal_submission("after-the-cut@example.com"))
            .await
            .is_ok()
    })
    .await;
    assert!(submitted, "replica A writes again");
    let position = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("the watcher on B gets the new entry")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
        .position;
    assert_eq!(position, 2);
}

/// Reads from `stream` until the server closes it; returns how long that took.
async fn wait_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes the connection within {within:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_http2_preface_is_closed_after_the_handshake_timeout() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let app = spawn_app_with(
        &Backend::Sqlite,
        Options {
            limits,
            ..Options::default()
        },
    )
    .await;
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let took = wait_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(400),
        "not before the timeout: {took:?}"
    );

    // Half a preface is no better.
    use tokio::io::AsyncWriteExt;
    let mut halting = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    halting.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    wait_until_closed(&mut halting, Duration::from_secs(5)).await;

    // A client that introduces itself is served as before, past the timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.wait_until_serving().await;
}
