//! The decision engine on a lead with 100 engagement events (target: one evaluation < 20 µs).
//!
//! `cargo bench --bench engine` prints the median time per operation over repeated batches and
//! its ratio to a baseline measured in the same run (cloning the same lead), since absolute
//! times on shared machines are noisy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use leadgate::domain::engine::{self, Command, Context, EventInput};
use leadgate::domain::lead::Lead;
use leadgate::domain::policy::Policy;
use leadgate::domain::values::{
    Code, Company, Contact, CountryCode, Email, EngagementKind, LeadId, Profile, Seniority, Source,
    SourceChannel,
};

/// Median nanoseconds per call of `f`, over batches of about 20 ms.
fn measure(mut f: impl FnMut()) -> f64 {
    let mut per_batch = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        if start.elapsed() > Duration::from_millis(20) {
            break;
        }
        per_batch *= 2;
    }
    let mut samples: Vec<f64> = (0..31)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn lead_with_events(policy: &Policy, n: usize) -> Lead {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let profile = Profile {
        contact: Contact {
            email: Email::parse("cfo@acme-industrie.fr").unwrap(),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: String::new(),
            job_title: String::new(),
            seniority: Some(Seniority::Executive),
            job_function: Some(Code::parse("finance").unwrap()),
        },
        company: Company {
            name: "Acme".into(),
            domain: None,
            industry: Some(Code::parse("manufacturing").unwrap()),
            employee_count: Some(300),
            country: Some(CountryCode::parse("FR").unwrap()),
        },
        source: Source {
            channel: SourceChannel::Website,
            campaign: String::new(),
        },
        external_reference: String::new(),
    };
    let events: Vec<EventInput> = (0..n)
        .map(|i| EventInput {
            kind: EngagementKind::ALL[i % EngagementKind::ALL.len()],
            occurred_at: Some(now - chrono::Duration::hours(i as i64 * 20)),
            subject: String::new(),
        })
        .collect();
    let ctx = Context {
        now,
        actor: "bench",
        request_id: None,
        policy,
    };
    let lead = engine::create(LeadId::from_uuid(uuid::Uuid::nil()), profile, &events, &ctx)
        .unwrap()
        .lead;
    assert_eq!(lead.events.len(), n, "every event still counts");
    lead
}

fn main() {
    let policy = Policy::default_policy();
    let lead = lead_with_events(&policy, 100);
    let now = lead.updated_at + chrono::Duration::minutes(1);
    let ctx = Context {
        now,
        actor: "bench",
        request_id: Some("r"),
        policy: &policy,
    };
    let command = Command::RecordEngagement {
        events: vec![EventInput {
            kind: EngagementKind::PricingPageVisit,
            occurred_at: None,
            subject: String::new(),
        }],
    };

    let baseline = measure(|| {
        black_box(black_box(&lead).clone());
    });
    let evaluate = measure(|| {
        black_box(engine::evaluate(black_box(&lead), &policy, now));
    });
    let apply = measure(|| {
        black_box(engine::apply(black_box(&lead), command.clone(), &ctx).unwrap());
    });
    let explain = measure(|| {
        black_box(engine::explain(black_box(&lead), &policy, now));
    });
    // What GetLead does besides the database: decode the stored document, build the answer.
    let document = serde_json::to_string(&lead).unwrap();
    let decode = measure(|| {
        black_box(serde_json::from_str::<Lead>(black_box(&document)).unwrap());
    });
    let view = leadgate::app::LeadView {
        lead: lead.clone(),
        sla_state: leadgate::domain::sla::SlaState::OnTrack,
        min_attempts_before_recycle: 6,
        read_at: now,
    };
    let answer = measure(|| {
        let proto = leadgate::grpc::convert::lead(black_box(&view));
        black_box(prost::Message::encode_to_vec(&proto));
    });

    println!("decision engine, lead with 100 engagement events (median of 31 batches)");
    println!(
        "(the stored document of this lead is {} bytes of JSON)",
        document.len()
    );
    println!("{:<44} {:>10} {:>12}", "operation", "µs/op", "× baseline");
    for (name, ns) in [
        ("baseline: clone the lead", baseline),
        ("evaluate: scores + recommended state", evaluate),
        ("apply: a command, with its audit entry", apply),
        ("explain: every score line, as text", explain),
        ("GetLead: decode the stored JSON document", decode),
        ("GetLead: build and encode the answer", answer),
    ] {
        println!("{name:<44} {:>10.2} {:>12.2}", ns / 1000.0, ns / baseline);
    }
    let verdict = if evaluate < 20_000.0 { "met" } else { "NOT met" };
    println!(
        "target: one evaluation < 20 µs: {verdict} ({:.2} µs)",
        evaluate / 1000.0
    );
}
