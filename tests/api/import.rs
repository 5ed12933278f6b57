//! ImportLeads: a result per row, bad rows beside good ones, idempotent rows, dry runs.

use leadgate::grpc::pb;
use pb::import_lead_result::Outcome;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

/// An import call of `leads` from row 1.
pub fn import(import_id: &str, leads: Vec<pb::SubmitLeadRequest>) -> pb::ImportLeadsRequest {
    pb::ImportLeadsRequest {
        import_id: import_id.into(),
        first_row: 1,
        leads,
        validate_only: false,
    }
}

/// `n` distinct valid rows.
pub fn rows(prefix: &str, n: usize) -> Vec<pb::SubmitLeadRequest> {
    (0..n)
        .map(|i| minimal_submission(&format!("{prefix}-{i}@acme-industrie.fr")))
        .collect()
}

pub async fn imported(app: &TestApp, request: pb::ImportLeadsRequest) -> pb::ImportLeadsResponse {
    app.leads
        .clone()
        .import_leads(request)
        .await
        .unwrap()
        .into_inner()
}

pub fn outcomes(response: &pb::ImportLeadsResponse) -> Vec<Outcome> {
    response.results.iter().map(|r| r.outcome()).collect()
}

contract! {
    async fn bad_rows_are_refused_alone_with_their_fields_and_good_rows_are_created(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut bad_email = minimal_submission("not-an-email");
        bad_email.company = Some(pb::Company { employee_count: -3, ..Default::default() });
        let mut with_request_id = minimal_submission("third@acme-industrie.fr");
        with_request_id.request_id = "mine".into();
        let no_source = pb::SubmitLeadRequest { source: None, ..minimal_submission("fourth@acme-industrie.fr") };
        let request = pb::ImportLeadsRequest {
            first_row: 10,
            ..import(
                "fair-2026",
                vec![
                    minimal_submission("first@acme-industrie.fr"),
                    bad_email,
                    with_request_id,
                    no_source,
                    minimal_submission("fifth@acme-industrie.fr"),
                ],
            )
        };
        let answer = imported(&app, request).await;
        assert_eq!(
            outcomes(&answer),
            [Outcome::Created, Outcome::Refused, Outcome::Refused, Outcome::Refused, Outcome::Created]
        );
        assert_eq!(answer.results.iter().map(|r| r.row).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
        assert_eq!((answer.created_count, answer.deduplicated_count, answer.refused_count), (2, 0, 3));
        let fields = |i: usize| answer.results[i].violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>();
        assert_eq!(fields(1), ["contact.email", "company.employee_count"]);
        assert_eq!(fields(2), ["request_id"]);
        assert_eq!(fields(3), ["source.channel"]);
        for i in [0, 4] {
            let result = &answer.results[i];
            assert!(result.violations.is_empty());
            let lead = app.leads.clone().get_lead(pb::GetLeadRequest { name: result.lead.clone() }).await.unwrap().into_inner();
            assert_eq!(lead.etag, result.etag);
        }
        for i in 1..4 {
            assert!(answer.results[i].lead.is_empty() && answer.results[i].etag.is_empty());
        }
        assert_eq!(app.db.leads().await, 2, "nothing of a refused row is written");
        // Each row's audit entry carries its derived request id.
        app.db.wait_until_chained().await;
        assert_eq!(
            app.db.count("SELECT COUNT(*) FROM audit_log WHERE request_id IN ('import:fair-2026:10', 'import:fair-2026:14')").await,
            2
        );
    }

    async fn a_bad_request_fails_whole_naming_the_field_and_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let cases: Vec<(pb::ImportLeadsRequest, &str)> = vec![
            (import("", rows("a", 1)), "import_id"),
            (import("has:colon", rows("b", 1)), "import_id"),
            (import(&"x".repeat(101), rows("c", 1)), "import_id"),
            (import("ok", Vec::new()), "leads"),
            (import("ok", rows("d", 1001)), "leads"),
            (pb::ImportLeadsRequest { first_row: -1, ..import("ok", rows("e", 1)) }, "first_row"),
        ];
        for (request, field) in cases {
            let status = app.leads.clone().import_leads(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
            assert_eq!(bad_fields(&status), [field]);
        }
        assert_eq!(app.db.leads().await, 0);
        // 1,000 rows is the most, and it is accepted.
        let answer = imported(&app, import("thousand", rows("f", 1000))).await;
        assert_eq!(answer.created_count, 1000);
        assert_eq!(app.db.leads().await, 1000);
    }

    async fn the_same_file_imported_twice_creates_nothing_the_second_time_and_answers_the_same(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut file = rows("twice", 6);
        file[3] = minimal_submission("broken");
        let first = imported(&app, import("list-a", file.clone())).await;
        let entries = app.db.audit_entries().await;
        let second = imported(&app, import("list-a", file.clone())).await;
        assert_eq!(first, second, "every row answered as it was first");
        assert_eq!((second.created_count, second.refused_count), (5, 1));
        assert_eq!(app.db.leads().await, 5);
        assert_eq!(app.db.audit_entries().await, entries, "nothing written the second time");
        // Sent in other call sizes (row numbers kept), the answers are the same too.
        let mut again = Vec::new();
        for (start, chunk) in [(1, &file[..2]), (3, &file[2..])] {
            let request = pb::ImportLeadsRequest { first_row: start, ..import("list-a", chunk.to_vec()) };
            again.extend(imported(&app, request).await.results);
        }
        assert_eq!(again, first.results);
        // A row whose content changed under the same import id is refused, naming the import id.
        let mut changed = file.clone();
        changed[0] = minimal_submission("someone-else@acme-industrie.fr");
        let answer = imported(&app, import("list-a", changed)).await;
        assert_eq!(answer.results[0].outcome(), Outcome::Refused);
        assert_eq!(answer.results[0].violations[0].field, "import_id");
        assert_eq!(answer.results[1], first.results[1]);
        assert_eq!(app.db.leads().await, 5);
        // Another import id is another import: the same emails are resubmissions now.
        let other = imported(&app, import("list-b", rows("twice", 2))).await;
        assert_eq!(outcomes(&other), [Outcome::Deduplicated, Outcome::Deduplicated]);
        assert_eq!(other.results[0].lead, first.results[0].lead);
    }

    async fn a_row_with_a_known_email_and_two_rows_with_one_email_are_deduplicated(backend: Backend) {
        let app = spawn_app(&backend).await;
        let known = submitted(&app, minimal_submission("known@acme-industrie.fr")).await;
        let mut shouting = minimal_submission("known@ACME-industrie.fr.");
        shouting.contact.as_mut().unwrap().given_name = "Claire".into();
        let answer = imported(
            &app,
            import(
                "dups",
                vec![
                    shouting,
                    minimal_submission("new@acme-industrie.fr"),
                    minimal_submission("new@ACME-Industrie.fr"),
                    minimal_submission("new@acme-industrie.fr"),
                ],
            ),
        )
        .await;
        assert_eq!(
            outcomes(&answer),
            [Outcome::Deduplicated, Outcome::Created, Outcome::Deduplicated, Outcome::Deduplicated]
        );
        assert_eq!(answer.results[0].lead, known.name);
        let new = &answer.results[1].lead;
        assert!(answer.results[2..].iter().all(|r| &r.lead == new));
        // Each row wrote a revision of its own, in row order.
        let etags: Vec<&str> = answer.results[1..].iter().map(|r| r.etag.as_str()).collect();
        assert_eq!(etags, ["\"1\"", "\"2\"", "\"3\""]);
        assert_eq!(app.db.leads().await, 2);
        let lead = app.leads.clone().get_lead(pb::GetLeadRequest { name: known.name.clone() }).await.unwrap().into_inner();
        assert_eq!(lead.contact.unwrap().given_name, "Claire", "the resubmission fills the empty field");
        assert_eq!(app.db.audit_entries_of(new).await, 3);
    }

    async fn a_dry_run_says_what_would_happen_and_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        submitted(&app, minimal_submission("known@acme-industrie.fr")).await;
        let entries = app.db.audit_entries().await;
        let file = vec![
            minimal_submission("known@acme-industrie.fr"),
            minimal_submission("new@acme-industrie.fr"),
            minimal_submission("new@acme-industrie.fr"),
            minimal_submission("bad"),
        ];
        let dry = imported(&app, pb::ImportLeadsRequest { validate_only: true, ..import("dry", file.clone()) }).await;
        assert_eq!(
            outcomes(&dry),
            [Outcome::Deduplicated, Outcome::Created, Outcome::Deduplicated, Outcome::Refused]
        );
        assert_eq!(dry.results[3].violations[0].field, "contact.email");
        assert_eq!(app.db.leads().await, 1);
        assert_eq!(app.db.audit_entries().await, entries);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
        // The real run that follows is answered alike, and writes.
        let real = imported(&app, import("dry", file)).await;
        assert_eq!(outcomes(&real), outcomes(&dry));
        assert_eq!(app.db.leads().await, 2);
        // A dry run of rows already imported answers what they got.
        let request = import("dry", vec![minimal_submission("known@acme-industrie.fr")]);
        let replayed = imported(&app, pb::ImportLeadsRequest { validate_only: true, ..request }).await;
        assert_eq!(replayed.results[0], real.results[0]);
    }

    async fn a_row_request_id_is_not_replayed_by_another_rpc(backend: Backend) {
        let app = spawn_app(&backend).await;
        let first = imported(&app, import("shared", rows("mine", 2))).await;
        assert_eq!(first.created_count, 2);
        // The same import id by SubmitLead's own request id: another RPC's key, refused.
        let mut submit = minimal_submission("mine-0@acme-industrie.fr");
        submit.request_id = "import:shared:1".into();
        let status = app.leads.clone().submit_lead(submit).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    }
}
