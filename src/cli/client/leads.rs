//! `leadgate leads list|show|explain|search|update|merge|erase|export|import`.

use std::process::ExitCode;

use super::format::{channel, grade, state, time};
use super::{Connection, describe, fail, lead_name};
use crate::cli::args::{ClientArgs, LeadsCommand, SearchArgs};
use crate::domain::engine::ProfileField;
use crate::domain::sla::SlaState;
use crate::domain::values::CriterionStatus;
use crate::grpc::pb;

pub async fn leads(args: ClientArgs, command: LeadsCommand) -> ExitCode {
    let connection = match Connection::open(&args).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let command = match command {
        LeadsCommand::Import(import) => return super::import::import(connection, import).await,
        other @ (LeadsCommand::List { .. }
        | LeadsCommand::Show { .. }
        | LeadsCommand::Explain { .. }
        | LeadsCommand::Search(_)
        | LeadsCommand::Update { .. }
        | LeadsCommand::Merge { .. }
        | LeadsCommand::Erase { .. }
        | LeadsCommand::Export { .. }) => other,
    };
    let mut client = connection.leads();
    // A search is a list with the filter its options make.
    let command = match command {
        LeadsCommand::Search(search) => LeadsCommand::List {
            filter: search_filter(&search),
            order_by: search.order_by,
            limit: search.limit,
        },
        other @ (LeadsCommand::List { .. }
        | LeadsCommand::Show { .. }
        | LeadsCommand::Explain { .. }
        | LeadsCommand::Update { .. }
        | LeadsCommand::Merge { .. }
        | LeadsCommand::Erase { .. }
        | LeadsCommand::Export { .. }) => other,
        LeadsCommand::Import(_) => unreachable!("an import runs on its own"),
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
        LeadsCommand::Import(_) => unreachable!("an import runs on its own"),
        LeadsCommand::Update {
            name,
            sets,
            etag,
            request_id,
        } => {
            let request = match update_request(&name, &sets, etag, request_id) {
                Ok(request) => request,
                Err(e) => return fail(e),
            };
            match client.update_lead(request).await {
                Ok(lead) => {
                    print!("{}", show(&lead.into_inner()));
                    ExitCode::SUCCESS
                }
                Err(status) => fail(describe(&status)),
            }
        }
        LeadsCommand::Erase {
            name,
            reason,
            request_id,
        } => {
            let request = pb::EraseLeadRequest {
                name: lead_name(&name),
                reason,
                request_id: request_id.unwrap_or_default(),
            };
            match client.erase_lead(request).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    if !answer.erased {
                        eprintln!("the lead had been erased before: nothing changed");
                    }
                    print!("{}", show(&answer.lead.unwrap_or_default()));
                    ExitCode::SUCCESS
                }
                Err(status) => fail(describe(&status)),
            }
        }
        LeadsCommand::Export { name, email } => {
            let request = pb::ExportLeadDataRequest {
                name: name.as_deref().map(lead_name).unwrap_or_default(),
                email: email.unwrap_or_default(),
            };
            match client.export_lead_data(request).await {
                Ok(export) => {
                    println!("{}", export.into_inner().data);
                    ExitCode::SUCCESS
                }
                Err(status) => fail(describe(&status)),
            }
        }
        LeadsCommand::Merge {
            winner,
            loser,
            reason,
            winner_etag,
            loser_etag,
            request_id,
        } => {
            let request = pb::MergeLeadsRequest {
                winner: lead_name(&winner),
                loser: lead_name(&loser),
                winner_etag: winner_etag.unwrap_or_default(),
                loser_etag: loser_etag.unwrap_or_default(),
                reason,
                request_id: request_id.unwrap_or_default(),
            };
            let loser = request.loser.clone();
            match client.merge_leads(request).await {
                Ok(answer) => {
                    let lead = answer.into_inner().lead.unwrap_or_default();
                    println!("merged {loser} into {}", lead.name);
                    print!("{}", show(&lead));
                    ExitCode::SUCCESS
                }
                Err(status) => fail(describe(&status)),
            }
        }
    }
}

/// An UpdateLead from `--set FIELD=VALUE` pairs: the mask is the fields, in the order given.
fn update_request(
    name: &str,
    sets: &[String],
    etag: Option<String>,
    request_id: Option<String>,
) -> Result<pb::UpdateLeadRequest, String> {
    let mut contact = pb::Contact::default();
    let mut company = pb::Company::default();
    let mut paths = Vec::new();
    for set in sets {
        let Some((path, value)) = set.split_once('=') else {
            return Err(format!("--set {set:?}: expected FIELD=VALUE"));
        };
        let (path, value) = (path.trim(), value.to_owned());
        match path {
            "contact.email" => contact.email = value,
            "contact.given_name" => contact.given_name = value,
            "contact.family_name" => contact.family_name = value,
            "contact.phone" => contact.phone = value,
            "contact.job_title" => contact.job_title = value,
            "contact.job_function" => contact.job_function = value,
            "contact.seniority" => {
                contact.seniority = match value.trim() {
                    "" => 0,
                    v => pb::Seniority::from_str_name(&format!("SENIORITY_{}", v.to_uppercase()))
                        .or_else(|| pb::Seniority::from_str_name(&v.to_uppercase()))
                        .ok_or_else(|| format!("--set contact.seniority: {v:?} is not a seniority"))?
                        as i32,
                }
            }
            "company.name" => company.name = value,
            "company.domain" => company.domain = value,
            "company.industry" => company.industry = value,
            "company.country_code" => company.country_code = value,
            "company.employee_count" => {
                company.employee_count = match value.trim() {
                    "" => 0,
                    v => v
                        .parse()
                        .map_err(|_| format!("--set company.employee_count: {v:?} is not a number"))?,
                }
            }
            other => {
                return Err(format!(
                    "--set {other:?}: not a field leads update changes (one of {})",
                    ProfileField::NAMES.join(", ")
                ));
            }
        }
        if !paths.iter().any(|p| p == path) {
            paths.push(path.to_owned());
        }
    }
    Ok(pb::UpdateLeadRequest {
        lead: Some(pb::Lead {
            name: lead_name(name),
            etag: etag.unwrap_or_default(),
            contact: Some(contact),
            company: Some(company),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths }),
        request_id: request_id.unwrap_or_default(),
    })
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
    if lead.erase_time.is_some() {
        out.push_str(&format!(
            "  erased      {} (a pseudonymous record)\n",
            time(&lead.erase_time)
        ));
    }
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

    fn sets(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_mask_is_the_fields_set_and_the_values_go_where_they_belong() {
        let request = update_request(
            "0190",
            &sets(&[
                "contact.phone=+33 6 12 34 56 78",
                "company.employee_count=250",
                "contact.seniority=director",
                "company.industry=",
            ]),
            Some("\"3\"".into()),
            Some("fix-1".into()),
        )
        .unwrap();
        let lead = request.lead.unwrap();
        assert_eq!(lead.name, "leads/0190");
        assert_eq!(lead.etag, "\"3\"");
        assert_eq!(lead.contact.as_ref().unwrap().phone, "+33 6 12 34 56 78");
        assert_eq!(
            lead.contact.as_ref().unwrap().seniority,
            pb::Seniority::Director as i32
        );
        assert_eq!(lead.company.as_ref().unwrap().employee_count, 250);
        assert_eq!(
            request.update_mask.unwrap().paths,
            [
                "contact.phone",
                "company.employee_count",
                "contact.seniority",
                "company.industry"
            ]
        );
        assert_eq!(request.request_id, "fix-1");
    }

    #[test]
    fn unknown_fields_and_bad_pairs_are_refused_before_calling() {
        for bad in [
            "state=LEAD",
            "contact.phone",
            "company.employee_count=many",
            "contact.seniority=boss",
        ] {
            assert!(update_request("x", &sets(&[bad]), None, None).is_err(), "{bad}");
        }
    }
}
