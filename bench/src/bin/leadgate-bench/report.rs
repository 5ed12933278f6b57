//! The table of figures, the targets, and whether the run itself went wrong.

use std::process::ExitCode;
use std::time::Duration;

use crate::Args;
use crate::measure::Figures;
use crate::scenarios::{BackendResults, WriteBaselines};

fn row(out: &mut String, scenario: &str, backend: &str, f: &Figures, baseline: &str) {
    if f.per_second == 0.0 && f.errors == 0 {
        return; // not run
    }
    let rss = f.rss_mib.map_or("-".into(), |r| format!("{r:.1}"));
    let errors = if f.errors > 0 {
        format!(" ({} errors)", f.errors)
    } else {
        String::new()
    };
    let line = format!(
        "{scenario:<21} {backend:<11} {:>10.0} {:>9.2} {:>9.2} {rss:>9}  {baseline}{errors}",
        f.per_second, f.p50_ms, f.p99_ms
    );
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Prints the table and the targets; fails if calls failed or a write baseline did not run.
pub fn report(
    args: &Args,
    bare: &Figures,
    sqlite: &BackendResults,
    postgres: Option<&BackendResults>,
) -> ExitCode {
    use crate::baselines::pgbench::{BATCH, SYNCHRONOUS_COMMIT};
    let backends = || [Some(sqlite), postgres].into_iter().flatten();

    let mut out = String::new();
    out.push_str(&format!(
        "leadgate-bench: {} callers, {:?} measured per scenario after {:?} of warm-up\n\n",
        args.concurrency, args.duration, args.warmup
    ));
    out.push_str(&format!(
        "{:<21} {:<11} {:>10} {:>9} {:>9} {:>9}  {}\n",
        "scenario", "backend", "calls/s", "p50 ms", "p99 ms", "RSS MiB", "vs baseline"
    ));
    row(&mut out, "bare tonic (health)", "-", bare, "baseline");
    for results in backends() {
        let Some(writes) = &results.writes else {
            continue;
        };
        let (one, batched, how) = match writes.clients {
            Some(clients) => (
                "pgbench (1/tx)",
                "pgbench (32/tx)",
                format!("writes/s; {clients} clients, -M prepared, synchronous_commit={SYNCHRONOUS_COMMIT}"),
            ),
            None => (
                "SQLite (1/tx)",
                "SQLite (32/tx)",
                "writes/s; one writer, WAL, synchronous=FULL".to_string(),
            ),
        };
        for (label, figures) in [(one, &writes.one), (batched, &writes.batched)] {
            match figures {
                Ok(f) => row(&mut out, label, results.name, f, &format!("baseline: {how}")),
                Err(e) => out.push_str(&format!("{label:<21} {:<11} failed: {e}\n", results.name)),
            }
        }
    }
    for results in backends() {
        let submit_vs = match &results.writes {
            Some(WriteBaselines {
                one: Ok(one),
                batched: Ok(batched),
                ..
            }) => format!(
                "{:.0}% of the 1-write/tx baseline, {:.0}% of the {BATCH}-write/tx one",
                100.0 * results.submit.per_second / one.per_second,
                100.0 * results.submit.per_second / batched.per_second
            ),
            _ => String::new(),
        };
        let health_vs = format!(
            "{:.0}% of bare tonic",
            100.0 * results.health.per_second / bare.per_second
        );
        row(
            &mut out,
            "health check",
            results.name,
            &results.health,
            &health_vs,
        );
        row(&mut out, "SubmitLead", results.name, &results.submit, &submit_vs);
        row(&mut out, "RecordEngagement", results.name, &results.engage, "");
        row(
            &mut out,
            "bare tonic (health)",
            results.name,
            &results.bare,
            "baseline for the GetLead below",
        );
        row(
            &mut out,
            "bare tonic (GetLead)",
            results.name,
            &results.bare_get,
            "baseline: a canned copy of a real lead",
        );
        let get_vs = format!(
            "{:.0}% of bare GetLead, {:.0}% of bare health",
            100.0 * results.get.per_second / results.bare_get.per_second,
            100.0 * results.get.per_second / results.bare.per_second
        );
        row(&mut out, "GetLead", results.name, &results.get, &get_vs);
        row(
            &mut out,
            "mixed",
            results.name,
            &results.mixed,
            "60% get, 20% engage, 15% submit, 5% list",
        );
    }
    out.push('\n');
    for results in [Some(sqlite), postgres].into_iter().flatten() {
        out.push_str(&format!(
            "start-up to SERVING on {}: {:.0} ms on a new database (migrations included), {:.0} ms on a migrated one\n",
            results.name,
            results.first_start.as_secs_f64() * 1000.0,
            results.restart.as_secs_f64() * 1000.0
        ));
    }
    for results in backends() {
        match &results.submit_drain {
            Some(Ok(drain)) => out.push_str(&format!(
                "sequencer lag on {}: the audit inbox emptied {:.0} ms after SubmitLead's last call\n",
                results.name,
                drain.as_secs_f64() * 1000.0
            )),
            Some(Err(e)) => out.push_str(&format!("sequencer lag on {}: {e}\n", results.name)),
            None => {}
        }
    }

    out.push_str("\ntargets\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let Some(Ok(batched)) = sqlite.writes.as_ref().map(|w| &w.batched) {
        let ratio = sqlite.submit.per_second / batched.per_second;
        out.push_str(&format!(
            "  SubmitLead on SQLite >= 35% of the {BATCH}-write/tx SQLite baseline: {} ({:.0}%)\n",
            verdict(ratio >= 0.35),
            ratio * 100.0
        ));
    }
    if let Some(pg) = postgres
        && let Some(Ok(pgbench)) = pg.writes.as_ref().map(|w| &w.one)
    {
        let ratio = pg.submit.per_second / pgbench.per_second;
        out.push_str(&format!(
            "  SubmitLead on PostgreSQL >= 75% of pgbench at 1 write/tx: {} ({:.0}%)\n",
            verdict(ratio >= 0.75),
            ratio * 100.0
        ));
        out.push_str(&format!(
            "  SubmitLead p99 < 25 ms at {} callers: {} ({:.1} ms; pgbench's own p99 {:.1} ms)\n",
            args.concurrency,
            verdict(pg.submit.p99_ms < 25.0),
            pg.submit.p99_ms,
            pgbench.p99_ms
        ));
    }
    let measured_get = [Some(sqlite), postgres]
        .into_iter()
        .flatten()
        .filter(|r| r.bare_get.per_second > 0.0);
    for results in measured_get {
        let ratio = results.get.per_second / results.bare_get.per_second;
        let to_health = results.get.per_second / results.bare.per_second;
        out.push_str(&format!(
            "  GetLead on {} >= 40% of bare tonic answering GetLead: {} ({:.0}%; {:.0}% of bare health checks)\n",
            results.name,
            verdict(ratio >= 0.4),
            ratio * 100.0,
            to_health * 100.0
        ));
    }
    let rss = [&sqlite.submit, &sqlite.engage, &sqlite.get, &sqlite.mixed]
        .iter()
        .filter_map(|f| f.rss_mib)
        .fold(0.0, f64::max);
    out.push_str(&format!(
        "  RSS < 64 MiB on SQLite under load: {} ({rss:.1} MiB peak)\n",
        verdict(rss < 64.0)
    ));
    for results in [Some(sqlite), postgres].into_iter().flatten() {
        out.push_str(&format!(
            "  SERVING within 1 s of start on a migrated database ({}): {} ({:.0} ms)\n",
            results.name,
            verdict(results.restart < Duration::from_secs(1)),
            results.restart.as_secs_f64() * 1000.0
        ));
    }
    print!("{out}");
    // Targets missed are figures to read; calls that failed, or a baseline that did not run,
    // mean the benchmark itself went wrong.
    let failed_calls: u64 = [Some(sqlite), postgres]
        .into_iter()
        .flatten()
        .flat_map(|r| {
            [
                &r.health,
                &r.submit,
                &r.engage,
                &r.get,
                &r.mixed,
                &r.bare,
                &r.bare_get,
            ]
        })
        .chain([bare])
        .map(|f| f.errors)
        .sum();
    let failed_baselines = backends()
        .filter_map(|r| r.writes.as_ref())
        .any(|w| w.one.is_err() || w.batched.is_err());
    if failed_calls > 0 || failed_baselines {
        eprintln!("leadgate-bench: {failed_calls} calls failed, or a write baseline did");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
