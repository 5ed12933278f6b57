//! `leadgate.v1.ReportService`.

use tonic::{Request, Response};

use super::convert::{self, EnumMapping};
use super::{Answer, pb};
use crate::app::App;
use crate::domain::funnel::ChannelFunnel;
use crate::domain::validation::Violations;
use crate::domain::values::SourceChannel;

pub struct ReportService {
    app: App,
}

impl ReportService {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn channel_funnel(f: &ChannelFunnel) -> pb::ChannelFunnel {
    pb::ChannelFunnel {
        channel: f.channel.map_or(0, EnumMapping::to_proto),
        leads_created: f.leads_created,
        stages: f
            .stages
            .iter()
            .map(|(state, n)| pb::StageCount {
                state: state.to_proto(),
                leads: *n,
            })
            .collect(),
        conversions: f
            .conversions
            .iter()
            .map(|x| pb::StageConversion {
                from_state: x.from.to_proto(),
                to_state: x.to.to_proto(),
                from_leads: x.from_leads,
                to_leads: x.to_leads,
                rate: x.rate,
            })
            .collect(),
        first_touch_count: f.first_touches,
        time_to_first_touch_p50: f.time_to_first_touch_p50.map(convert::duration_to_proto),
        time_to_first_touch_p90: f.time_to_first_touch_p90.map(convert::duration_to_proto),
        sla_started_count: f.sla_started,
        sla_breached_count: f.sla_breached,
        sla_breach_rate: f.sla_breach_rate,
        disqualification_reasons: f
            .disqualifications
            .iter()
            .map(|(reason, n)| pb::DisqualificationCount {
                reason: reason.to_proto(),
                leads: *n,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportService {
    async fn get_funnel_report(
        &self,
        request: Request<pb::GetFunnelReportRequest>,
    ) -> Answer<pb::FunnelReport> {
        let pb::GetFunnelReportRequest {
            start_time,
            end_time,
            source_channels,
        } = request.into_inner();
        let mut v = Violations::default();
        let start = match start_time {
            Some(t) => v.check("start_time", convert::time_from_proto(&t)),
            None => {
                v.add("start_time", "is required");
                None
            }
        };
        let end = match end_time {
            Some(t) => v.check("end_time", convert::time_from_proto(&t)),
            None => Some(crate::app::now()),
        };
        let channels: Vec<SourceChannel> = source_channels
            .iter()
            .enumerate()
            .filter_map(|(i, ch)| convert::required_enum(&mut v, &format!("source_channels[{i}]"), *ch))
            .collect();
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("end_time", "must be after start_time");
        }
        convert::ensure_valid(v)?;
        let report = self
            .app
            .funnel(convert::validated(start)?, convert::validated(end)?, &channels)
            .await?;
        Ok(Response::new(pb::FunnelReport {
            start_time: Some(convert::time_to_proto(report.start)),
            end_time: Some(convert::time_to_proto(report.end)),
            channels: report.channels.iter().map(channel_funnel).collect(),
            total: Some(channel_funnel(&report.total)),
        }))
    }
}
