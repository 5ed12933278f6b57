//! GetFunnelReport, from the trail of a small known history.

use std::time::Duration;

use leadgate::grpc::pb;
use pb::CriterionStatus::Met;
use pb::report_service_client::ReportServiceClient;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

fn stage(f: &pb::ChannelFunnel, state: pb::LeadState) -> i64 {
    f.stages
        .iter()
        .find(|s| s.state == state as i32)
        .map_or(0, |s| s.leads)
}

fn conversion(f: &pb::ChannelFunnel, from: pb::LeadState, to: pb::LeadState) -> (i64, i64, f64) {
    let c = f
        .conversions
        .iter()
        .find(|c| c.from_state == from as i32 && c.to_state == to as i32)
        .unwrap();
    (c.from_leads, c.to_leads, c.rate)
}

contract! {
    async fn the_funnel_counts_stages_conversions_speed_and_breaches(backend: Backend) {
        let app = spawn_app(&backend).await;
        let start = minutes_from_now(-10);
        use pb::LeadState as S;

        // WEBSITE: a CFO called within minutes, qualified and converted.
        let won = submitted(&app, cfo_demo_request("won@acme.fr")).await;
        let attempt = pb::RecordContactAttemptRequest {
            name: won.name.clone(),
            attempt: Some(pb::ContactAttempt { channel: pb::ContactChannel::Phone as i32, outcome: pb::ContactOutcome::Connected as i32, ..Default::default() }),
            ..Default::default()
        };
        app.leads.clone().record_contact_attempt(attempt).await.unwrap();
        let call = pb::RecordDiscoveryCallRequest { name: won.name.clone(), findings: Some(findings(Met, Met, Met, Met)), ..Default::default() };
        app.leads.clone().record_discovery_call(call).await.unwrap();
        let convert = pb::ConvertLeadRequest { name: won.name.clone(), opportunity_reference: "OPP-1".into(), ..Default::default() };
        app.leads.clone().convert_lead(convert).await.unwrap();
        // WEBSITE: a demo request nobody answered in time.
        let mut late = cfo_demo_request("late@acme.fr");
        late.events[0].occur_time = Some(minutes_from_now(-6));
        submitted(&app, late).await;
        // WEBSITE: a lead that stays a lead.
        let mut quiet = cfo_demo_request("quiet@acme.fr");
        quiet.events.clear();
        submitted(&app, quiet).await;
        // TRADE_SHOW: a law firm (nurtured) and a lead lost to a competitor.
        let mut firm = cfo_demo_request("firm@cabinet.fr");
        firm.company.as_mut().unwrap().industry = "legal_services".into();
        firm.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
        submitted(&app, firm).await;
        let mut lost = cfo_demo_request("lost@acme.fr");
        lost.events.clear();
        lost.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
        let lost = submitted(&app, lost).await;
        let disqualify = pb::OverrideLeadStateRequest {
            name: lost.name.clone(),
            state: S::Disqualified as i32,
            reason: "signed with a competitor".into(),
            disqualification_reason: pb::DisqualificationReason::LostToCompetitor as i32,
            ..Default::default()
        };
        app.leads.clone().override_lead_state(disqualify).await.unwrap();
        assert!(eventually(Duration::from_secs(10), || async { app.db.entries_of_kind("SLA_BREACHED").await == 1 }).await);
        app.db.wait_until_chained().await;

        let mut reports = ReportServiceClient::new(app.channel.clone());
        let report = reports
            .get_funnel_report(pb::GetFunnelReportRequest { start_time: Some(start), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let total = report.total.unwrap();
        assert_eq!(total.leads_created, 5);
        assert_eq!(stage(&total, S::Lead), 5);
        assert_eq!(stage(&total, S::MarketingQualified), 2);
        assert_eq!(stage(&total, S::SalesQualified), 1);
        assert_eq!(stage(&total, S::Converted), 1);
        assert_eq!(stage(&total, S::Nurturing), 1);
        assert_eq!(stage(&total, S::Disqualified), 1);
        assert_eq!(conversion(&total, S::Lead, S::MarketingQualified), (5, 2, 0.4));
        assert_eq!(conversion(&total, S::MarketingQualified, S::SalesQualified), (2, 1, 0.5));
        assert_eq!(conversion(&total, S::SalesQualified, S::Converted), (1, 1, 1.0));
        assert_eq!(total.first_touch_count, 1);
        assert!(total.time_to_first_touch_p50.unwrap().seconds < 60);
        assert_eq!((total.sla_started_count, total.sla_breached_count, total.sla_breach_rate), (2, 1, 0.5));
        let reasons: Vec<_> = total.disqualification_reasons.iter().map(|d| (d.reason, d.leads)).collect();
        assert_eq!(reasons, [(pb::DisqualificationReason::LostToCompetitor as i32, 1)]);

        let channels: Vec<_> = report.channels.iter().map(|c| (c.channel, c.leads_created)).collect();
        assert_eq!(channels, [(pb::SourceChannel::Website as i32, 3), (pb::SourceChannel::TradeShow as i32, 2)]);

        let trade_show = reports
            .get_funnel_report(pb::GetFunnelReportRequest {
                start_time: Some(start),
                end_time: Some(minutes_from_now(1)),
                source_channels: vec![pb::SourceChannel::TradeShow as i32],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(trade_show.total.unwrap().leads_created, 2);
        let before = reports
            .get_funnel_report(pb::GetFunnelReportRequest { start_time: Some(minutes_from_now(-60)), end_time: Some(start), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(before.total.unwrap().leads_created, 0, "nothing happened before");
    }

    async fn a_merged_pair_counts_as_one_lead_from_the_merge_on(backend: Backend) {
        let app = spawn_app(&backend).await;
        let start = minutes_from_now(-10);
        let winner = submitted(&app, cfo_demo_request("claire@acme.fr")).await;
        let loser = submitted(&app, cfo_demo_request("claire.martin@gmail.com")).await;
        let now = chrono::Utc::now();
        let merged_at = prost_types::Timestamp { seconds: now.timestamp(), nanos: now.timestamp_subsec_nanos() as i32 };
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.leads.clone().merge_leads(crate::merge::merge(&winner, &loser)).await.unwrap();
        app.db.wait_until_chained().await;
        let reports = ReportServiceClient::new(app.channel.clone());
        let report = |end: Option<prost_types::Timestamp>| {
            let request = pb::GetFunnelReportRequest { start_time: Some(start), end_time: end, ..Default::default() };
            let mut reports = reports.clone();
            async move { reports.get_funnel_report(request).await.unwrap().into_inner().total.unwrap() }
        };
        let total = report(None).await;
        assert_eq!(total.leads_created, 1);
        assert_eq!(stage(&total, pb::LeadState::Lead), 1);
        assert_eq!(stage(&total, pb::LeadState::MarketingQualified), 1);
        // Both demo requests started a clock: they did, merged or not.
        assert_eq!(total.sla_started_count, 2);
        // A period that ended before the merge saw two leads.
        let before = report(Some(merged_at)).await;
        assert_eq!(before.leads_created, 2);
    }

    async fn a_funnel_needs_a_period(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut reports = ReportServiceClient::new(app.channel.clone());
        let missing = reports.get_funnel_report(pb::GetFunnelReportRequest::default()).await.unwrap_err();
        assert_eq!(bad_fields(&missing), ["start_time"]);
        let backwards = pb::GetFunnelReportRequest { start_time: Some(minutes_from_now(0)), end_time: Some(minutes_from_now(-5)), source_channels: vec![99] };
        let status = reports.get_funnel_report(backwards).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, ["end_time", "source_channels[0]"]);
    }
}
