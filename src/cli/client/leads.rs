//! `leadgate leads list|show|explain|search`.

use std::process::ExitCode;

use super::format::{channel, grade, state, time};
use super::{Connection, describe, fail, lead_name};
use crate::cli::args::{ClientArgs, LeadsCommand, SearchArgs};
use crate::domain::sla::SlaState;
use crate::domain::values::CriterionStatus;
use crate::grpc::pb;

pub async fn leads(args: ClientArgs, command: LeadsCommand) -> ExitCode {
    let connection = match Connection::open(&args).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut client = connection.leads();
    // A search is a list with the filter its options make.
    let command = match command {
        LeadsCommand::Search(search) => LeadsCommand::List {
            filter: search_filter(&search),
            order_by: search.order_by,
            limit: search.limit,
        },
        other @ (LeadsCommand::List { .. } | LeadsCommand::Show { .. } | LeadsCommand::Explain { .. }) => {
            other
        }
    };
    match command {
        LeadsCommand::List {
            filter,
            order_by,
            limit,
        } => {
            let mut token = String::new();
            let mut printed = 0;
            println!(
                "{:<43} {:<20} {:<12} {:>5} {:>8}  CREATED",
                "NAME", "STATE", "CHANNEL", "GRADE", "POINTS"
            );
            while printed < limit {
                let request = pb::ListLeadsRequest {
                    page_size: (limit - printed).min(1000) as i32,
                    page_token: token,
                    filter: filter.clone(),
                    order_by: order_by.clone(),
                };
                let page = match client.list_leads(request).await {
                    Ok(page) => page.into_inner(),
                    Err(status) => return fail(describe(&status)),
                };
                for lead in &page.leads {
                    let scores = lead.scores.unwrap_or_default();
                    println!(
                        "{:<43} {:<20} {:<12} {:>5} {:>8.2}  {}",
                        lead.name,
                        state(lead.state),
                        channel(lead.source.as_ref().map_or(0, |s| s.channel)),
                        grade(scores.fit_grade),
                        scores.combined_points,
                        time(&lead.create_time)
                    );
                }
                printed += page.leads.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            ExitCode::SUCCESS
        }
        LeadsCommand::Show { name } => match client
            .get_lead(pb::GetLeadRequest {
                name: lead_name(&name),
            })
            .await
        {
            Ok(lead) => {
                print!("{}", show(&lead.into_inner()));
                ExitCode::SUCCESS
            }
            Err(status) => fail(describe(&status)),
        },
        LeadsCommand::Explain { name } => match client
            .explain_lead(pb::ExplainLeadRequest {
                name: lead_name(&name),
            })
            .await
        {
            Ok(explanation) => {
                print!("{}", explanation.into_inner().text);
                ExitCode::SUCCESS
            }
            Err(status) => fail(describe(&status)),
        },
        LeadsCommand::Search(_) => unreachable!("a search runs as a list"),
    }
}

/// The ListLeads filter of `leads search`: every option given, joined by AND.
pub fn search_filter(search: &SearchArgs) -> String {
    let quoted = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    let mut terms = Vec::new();
    if let Some(email) = &search.email {
        terms.push(format!("contact.email = {}", quoted(email)));
    }
    if let Some(domain) = &search.domain {
        terms.push(format!("company.domain = {}", quoted(domain)));
    }
    if let Some(reference) = &search.reference {
        terms.push(format!("external_reference = {}", quoted(reference)));
    }
    if let Some(name) = &search.name {
        // `= "x*"` is the server's prefix match; otherwise the name contains the text.
        let op = if name.ends_with('*') { "=" } else { ":" };
        terms.push(format!("company.name {op} {}", quoted(name)));
    }
    if let Some(filter) = search.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        // The grammar's top level is a conjunction: the caller's filter is more of its terms.
        terms.push(filter.to_owned());
    }
    terms.join(" AND ")
}

fn show(lead: &pb::Lead) -> String {
    let contact = lead.contact.clone().unwrap_or_default();
    let company = lead.company.clone().unwrap_or_default();
    let scores = lead.scores.unwrap_or_default();
    let sla = lead.sla.unwrap_or_default();
    let bant = lead.bant.clone().unwrap_or_default();
    let criterion = |status: i32| {
        pb::CriterionStatus::try_from(status).map_or_else(
            |_| "?".into(),
            |s| super::format::name(s.as_str_name(), CriterionStatus::PREFIX),
        )
    };
    let mut out = String::new();
    out.push_str(&format!("{}\n", lead.name));
    out.push_str(&format!(
        "  contact     {} {} <{}>\n",
        contact.given_name, contact.family_name, contact.email
    ));
    out.push_str(&format!(
        "  company     {} ({}, {} employees, {})\n",
        company.name, company.industry, company.employee_count, company.country_code
    ));
    out.push_str(&format!(
        "  source      {}\n",
        channel(lead.source.as_ref().map_or(0, |s| s.channel))
    ));
    out.push_str(&format!(
        "  state       {} since {}\n",
        state(lead.state),
        time(&lead.state_change_time)
    ));
    for reason in &lead.state_reasons {
        out.push_str(&format!("              {}: {}\n", reason.rule_id, reason.message));
    }
    if lead.revisit_time.is_some() {
        out.push_str(&format!("  revisit     {}\n", time(&lead.revisit_time)));
    }
    out.push_str(&format!(
        "  scores      fit {:.2} ({}), engagement {:.2}, combined {:.2} / {:.2}\n",
        scores.fit_points,
        grade(scores.fit_grade),
        scores.engagement_points,
        scores.combined_points,
        scores.marketing_qualified_threshold
    ));
    out.push_str(&format!(
        "  bant        need {}, budget {}, authority {}, timing {} ({} of 4 met)\n",
        criterion(bant.need.map_or(0, |c| c.status)),
        criterion(bant.budget.as_ref().map_or(0, |c| c.status)),
        criterion(bant.authority.as_ref().map_or(0, |c| c.status)),
        criterion(bant.timing.as_ref().map_or(0, |c| c.status)),
        bant.met_count
    ));
    let sla_state = pb::SlaState::try_from(sla.state).map_or_else(
        |_| "?".into(),
        |s| super::format::name(s.as_str_name(), SlaState::PREFIX),
    );
    out.push_str(&format!(
        "  sla         {} (due {}, first touch {}, {} attempts)\n",
        sla_state,
        time(&sla.due_time),
        time(&sla.first_touch_time),
        sla.attempt_count
    ));
    if let Some(o) = &lead.r#override {
        out.push_str(&format!(
            "  override    {} by {}: {}\n",
            state(o.state),
            o.actor,
            o.reason
        ));
    }
    if let Some(r) = &lead.recommendation {
        out.push_str(&format!("  recommends  {}\n", state(r.state)));
    }
    out.push_str(&format!(
        "  policy      {}\n  etag        {}\n",
        lead.policy_version, lead.etag
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(email: Option<&str>, name: Option<&str>, filter: Option<&str>) -> SearchArgs {
        SearchArgs {
            email: email.map(Into::into),
            domain: None,
            reference: None,
            name: name.map(Into::into),
            filter: filter.map(Into::into),
            order_by: String::new(),
            limit: 1,
        }
    }

    #[test]
    fn a_search_joins_its_options_and_quotes_their_values() {
        assert_eq!(
            search_filter(&search(Some("Jane@ACME.com"), Some(r#"The "Best" \ Co"#), None)),
            r#"contact.email = "Jane@ACME.com" AND company.name : "The \"Best\" \\ Co""#
        );
        assert_eq!(
            search_filter(&search(None, Some("acme*"), None)),
            r#"company.name = "acme*""#
        );
        assert_eq!(
            search_filter(&search(
                Some("a@b.co"),
                None,
                Some("(state = LEAD OR state = LOST) AND x = 1")
            )),
            r#"contact.email = "a@b.co" AND (state = LEAD OR state = LOST) AND x = 1"#
        );
    }
}
