//! `leadgate.v1.AuditService`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status};
use tonic_types::ErrorDetails;

use super::StreamLimits;
use super::convert::{self, EnumMapping};
use super::status::status;
use super::{Answer, pb};
use crate::app::{App, AppError, VerifyRequest, WatchStart, WatchTerms};
use crate::domain::audit::ChainHead;
use crate::domain::hex::from_hex;
use crate::domain::query::{AuditField, AuditOrder, NoField, QuarantineOrder, parse_filter, parse_list};

pub struct AuditService {
    app: App,
    /// How every watch stream runs (slow-consumer timeout, shutdown).
    terms: WatchTerms,
    /// One permit per open watch stream, held until the stream is dropped: counted apart from
    /// calls, whose permit is released once the response headers are out.
    open_streams: Arc<Semaphore>,
    /// The most streams open at once (for the refusal's message).
    max_open_streams: usize,
}

impl AuditService {
    pub fn new(app: App, limits: &StreamLimits) -> Self {
        Self {
            app,
            terms: WatchTerms {
                slow_consumer_timeout: limits.slow_consumer_timeout,
                stop: limits.stop.clone(),
            },
            open_streams: Arc::new(Semaphore::new(limits.max_open_streams)),
            max_open_streams: limits.max_open_streams,
        }
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditService {
    type WatchDecisionsStream =
        std::pin::Pin<Box<dyn Stream<Item = Result<pb::WatchDecisionsResponse, Status>> + Send>>;

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Answer<pb::ListAuditEventsResponse> {
        let pb::ListAuditEventsRequest {
            page_size,
            page_token,
            filter,
            order_by,
        } = request.into_inner();
        let query = parse_list::<AuditField, AuditOrder>(&filter, &order_by, &page_token, page_size)
            .map_err(|(field, e)| AppError::invalid(field, e.0))?;
        let page = self.app.list_audit(&query).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.entries.iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn verify_audit_trail(
        &self,
        request: Request<pb::VerifyAuditTrailRequest>,
    ) -> Answer<pb::VerifyAuditTrailResponse> {
        let deadline = request
            .extensions()
            .get::<super::guard::CallDeadline>()
            .map(|d| d.0);
        let pb::VerifyAuditTrailRequest {
            start_position,
            end_position,
            expected_digest,
            resume_token,
            max_entries,
        } = request.into_inner();
        let mut v = crate::domain::validation::Violations::default();
        if start_position < 0 {
            v.add("start_position", "must not be negative");
        }
        if end_position < 0 {
            v.add("end_position", "must not be negative");
        }
        if max_entries < 0 {
            v.add("max_entries", "must not be negative");
        }
        let expected = expected_digest.and_then(|d| {
            let hash = v.check("expected_digest.hash", from_hex(&d.hash));
            if d.position < 1 {
                v.add("expected_digest.position", "must be a position (1 or more)");
            }
            hash.map(|hash| ChainHead {
                position: d.position,
                hash,
            })
        });
        convert::ensure_valid(v)?;
        let verification = self
            .app
            .verify_audit(VerifyRequest {
                start: start_position,
                end: end_position,
                expected,
                resume_token: &resume_token,
                max_entries,
                deadline,
            })
            .await?;
        let finding = verification.finding.as_ref();
        let complete = verification.resume_token.is_none();
        let message = match (finding, &verification.resume_token) {
            (Some(f), _) => f.message.clone(),
            (None, None) => format!("{} entries verified", verification.checked),
            (None, Some(_)) => format!(
                "{} entries verified so far, through position {} of {}: continue with resume_token",
                verification.checked, verification.verified_through, verification.end
            ),
        };
        Ok(Response::new(pb::VerifyAuditTrailResponse {
            ok: finding.is_none() && complete,
            verified_count: verification.checked,
            first_bad_position: finding.map_or(0, |f| f.position),
            problem: finding.map_or(0, |f| f.problem.to_proto()),
            message,
            head: Some(convert::digest(&verification.head)),
            complete,
            verified_through: verification.verified_through,
            resume_token: verification.resume_token.unwrap_or_default(),
            end_position: verification.end,
        }))
    }

    async fn list_quarantined_audit_entries(
        &self,
        request: Request<pb::ListQuarantinedAuditEntriesRequest>,
    ) -> Answer<pb::ListQuarantinedAuditEntriesResponse> {
        let pb::ListQuarantinedAuditEntriesRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let query = parse_list::<NoField, QuarantineOrder>("", "", &page_token, page_size)
            .map_err(|(field, e)| AppError::invalid(field, e.0))?;
        let page = self.app.list_quarantine(&query).await?;
        Ok(Response::new(pb::ListQuarantinedAuditEntriesResponse {
            quarantined_audit_entries: page.entries.iter().map(quarantined).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_audit_digest(&self, _: Request<pb::GetAuditDigestRequest>) -> Answer<pb::AuditDigest> {
        Ok(Response::new(convert::digest(&self.app.audit_digest().await?)))
    }

    async fn watch_decisions(
        &self,
        request: Request<pb::WatchDecisionsRequest>,
    ) -> Answer<Self::WatchDecisionsStream> {
        let pb::WatchDecisionsRequest {
            after_position,
            from_head,
            filter,
        } = request.into_inner();
        let mut v = crate::domain::validation::Violations::default();
        if after_position < 0 {
            v.add("after_position", "must not be negative");
        }
        if from_head && after_position != 0 {
            v.add("after_position", "must be 0 with from_head");
        }
        let filter = v.check(
            "filter",
            parse_filter(&filter, AuditField::WATCHABLE).map_err(|e| e.0),
        );
        convert::ensure_valid(v)?;
        let filter = convert::validated(filter)?;
        let Ok(permit) = self.open_streams.clone().try_acquire_owned() else {
            crate::metrics::watch_stream_refused();
            return Err(status(
                Code::ResourceExhausted,
                "TOO_MANY_STREAMS",
                format!(
                    "{} streams are open on this server, the most it serves: retry with backoff",
                    self.max_open_streams
                ),
                ErrorDetails::new(),
            ));
        };
        let start = if from_head {
            WatchStart::Head
        } else {
            WatchStart::After(after_position)
        };
        let slot = StreamSlot::take(permit);
        let entries = self.app.watch(start, filter, &self.terms).await?;
        let stream = entries.map(move |item| {
            // The stream holds its slot until the transport drops it (ended, reset, or its
            // connection closed).
            let _slot = &slot;
            match item {
                Ok(entry) => Ok(pb::WatchDecisionsResponse {
                    event: Some(convert::audit_event(&entry)),
                }),
                Err(error) => Err(Status::from(error)),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One open stream's place under `--max-open-streams`, counted in the metrics while held.
struct StreamSlot {
    /// Returned to `open_streams` when the slot is dropped.
    _permit: OwnedSemaphorePermit,
}

impl StreamSlot {
    fn take(permit: OwnedSemaphorePermit) -> Self {
        crate::metrics::watch_streams(1.0);
        Self { _permit: permit }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        crate::metrics::watch_streams(-1.0);
    }
}

fn quarantined(e: &crate::store::QuarantinedEntry) -> pb::QuarantinedAuditEntry {
    pb::QuarantinedAuditEntry {
        name: format!("quarantinedAuditEntries/{}", e.id),
        inbox_id: e.inbox_id,
        quarantine_time: Some(convert::time_to_proto(e.quarantined_at)),
        reason: e.reason.clone(),
        detail: e.detail.clone(),
        lead: e.lead.map(|l| l.name()).unwrap_or_default(),
        kind: e.kind.clone(),
        record_time: chrono::DateTime::from_timestamp_micros(e.record_time).map(convert::time_to_proto),
        actor: e.actor.clone(),
        request_id: e.request_id.clone().unwrap_or_default(),
        seal_key_id: e.seal_key_id.clone().unwrap_or_default(),
    }
}
