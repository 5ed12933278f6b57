//! Any bytes, decoded as a request the way the server decodes them, then validated and (when
//! valid) run through the engine: never a panic.
#![no_main]

use leadgate::domain::engine::{Context, create};
use leadgate::domain::policy::Policy;
use leadgate::domain::values::LeadId;
use leadgate::grpc::{convert, pb};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = pb::SubmitLeadRequest::decode(data) {
        if let Ok((submission, _)) = convert::submission(request) {
            let policy = Policy::default_policy();
            let ctx = Context {
                now: chrono::DateTime::UNIX_EPOCH,
                actor: "fuzz",
                request_id: None,
                policy: &policy,
            };
            let _ = create(
                LeadId::from_uuid(Default::default()),
                submission.profile,
                &submission.events,
                &ctx,
            );
        }
    }
    if let Ok(request) = pb::DiscoveryCallFindings::decode(data) {
        let mut v = Default::default();
        let _ = convert::discovery_call(&mut v, Some(request));
    }
    if let Ok(request) = pb::ContactAttempt::decode(data) {
        let mut v = Default::default();
        let _ = convert::contact_attempt(&mut v, Some(request));
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = LeadId::parse_name(name);
    }
});
