//! `leadgate funnel`: a readable funnel with bars.

use std::fmt::Write;
use std::process::ExitCode;

use super::format::{bar, channel, duration, state, time};
use super::{Connection, describe, fail};
use crate::cli::args::FunnelArgs;
use crate::domain::values::DisqualificationReason;
use crate::grpc::pb;

fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .map_err(|_| format!("{text:?} is not a time (2026-01-31T00:00:00Z) or a date (2026-01-31)"))?;
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

pub async fn funnel(args: FunnelArgs) -> ExitCode {
    let start = match parse_time(&args.from) {
        Ok(t) => t,
        Err(e) => return fail(format!("--from {e}")),
    };
    let end = match args.to.as_deref().map(parse_time) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return fail(format!("--to {e}")),
        None => None,
    };
    let mut channels = Vec::new();
    for name in &args.channels {
        let full = format!("SOURCE_CHANNEL_{}", name.trim().to_ascii_uppercase());
        match pb::SourceChannel::from_str_name(&full) {
            Some(c) => channels.push(c as i32),
            None => return fail(format!("--channel {name:?} is not a source channel")),
        }
    }
    let connection = match Connection::open(&args.client).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let request = pb::GetFunnelReportRequest {
        start_time: Some(start),
        end_time: end,
        source_channels: channels,
    };
    match connection.reports().get_funnel_report(request).await {
        Ok(report) => {
            print!("{}", render(&report.into_inner()));
            ExitCode::SUCCESS
        }
        Err(status) => fail(describe(&status)),
    }
}

fn render(report: &pb::FunnelReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Funnel from {} to {}",
        time(&report.start_time),
        time(&report.end_time)
    );
    if let Some(total) = &report.total {
        render_channel(&mut out, "ALL CHANNELS", total);
    }
    for c in &report.channels {
        render_channel(&mut out, &channel(c.channel), c);
    }
    out
}

fn render_channel(out: &mut String, title: &str, f: &pb::ChannelFunnel) {
    let _ = writeln!(out, "\n{title}: {} leads created", f.leads_created);
    for stage in &f.stages {
        let _ = writeln!(
            out,
            "  {:<22} {:>8} leads entered",
            state(stage.state),
            stage.leads
        );
    }
    for c in &f.conversions {
        let _ = writeln!(
            out,
            "  {:<45} {} {:>6.1}%  ({}/{})",
            format!("{} -> {}", state(c.from_state), state(c.to_state)),
            bar(c.rate, 20),
            c.rate * 100.0,
            c.to_leads,
            c.from_leads
        );
    }
    let _ = writeln!(
        out,
        "  speed to lead: p50 {}, p90 {} ({} first touches)",
        duration(&f.time_to_first_touch_p50),
        duration(&f.time_to_first_touch_p90),
        f.first_touch_count
    );
    let _ = writeln!(
        out,
        "  SLA: {} breached of {} started ({:.1}%)",
        f.sla_breached_count,
        f.sla_started_count,
        f.sla_breach_rate * 100.0
    );
    if !f.disqualification_reasons.is_empty() {
        let reasons: Vec<_> = f
            .disqualification_reasons
            .iter()
            .map(|d| {
                let name = pb::DisqualificationReason::try_from(d.reason).map_or_else(
                    |_| "?".into(),
                    |r| super::format::name(r.as_str_name(), DisqualificationReason::PREFIX),
                );
                format!("{name} {}", d.leads)
            })
            .collect();
        let _ = writeln!(out, "  disqualified: {}", reasons.join(", "));
    }
}
