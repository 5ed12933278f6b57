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
        let chained = results.submit.chained_per_second(args.duration);
        let submit_vs = match &results.writes {
            Some(WriteBaselines {
                one: Ok(one),
                batched: Ok(batched),
                ..
            }) => format!(
                "{chained:.0} chained/s: {:.0}% of the 1-write/tx baseline, {:.0}% of the {BATCH}-write/tx one",
                100.0 * chained / one.per_second,
                100.0 * chained / batched.per_second
            ),
            _ => format!("{chained:.0} chained/s"),
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
        row(
            &mut out,
            "SubmitLead (new)",
            results.name,
            &results.submit,
            &submit_vs,
        );
        row(
            &mut out,
            "SubmitLead (known)",
            results.name,
            &results.resubmit,
            "a known email under a new request id: the resubmission recorded",
        );
        row(
            &mut out,
            "SubmitLead (replay)",
            results.name,
            &results.replay,
            "a request already answered: its stored answer",
        );
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
    out.push_str(
        "\naudit sequencer lag during each write scenario (age of the oldest entry not chained, \
         sampled every 10 ms after the warm-up) and the drain after its last call\n",
    );
    for results in backends() {
        for (scenario, figures) in write_scenarios(results) {
            let Some(lag) = &figures.lag else {
                continue;
            };
            let drain = match &lag.drain {
                Some(Ok(d)) => format!("drained in {:.0} ms", d.as_secs_f64() * 1000.0),
                Some(Err(e)) => format!("drain: {e}"),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {scenario:<19} {:<11} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  {drain}\n",
                results.name, lag.p50_ms, lag.p99_ms, lag.max_ms
            ));
        }
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
    out.push_str("\ntargets\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let Some(Ok(batched)) = sqlite.writes.as_ref().map(|w| &w.batched) {
        let ratio = sqlite.submit.chained_per_second(args.duration) / batched.per_second;
        out.push_str(&format!(
            "  SubmitLead on SQLite, chained, >= 35% of the {BATCH}-write/tx SQLite baseline: {} ({:.0}%)\n",
            verdict(ratio >= 0.35),
            ratio * 100.0
        ));
    }
    if let Some(pg) = postgres
        && let Some(Ok(pgbench)) = pg.writes.as_ref().map(|w| &w.one)
    {
        let ratio = pg.submit.chained_per_second(args.duration) / pgbench.per_second;
        out.push_str(&format!(
            "  SubmitLead on PostgreSQL, chained, >= 75% of pgbench at 1 write/tx: {} ({:.0}%)\n",
            verdict(ratio >= 0.75),
            ratio * 100.0
        ));
    }
    for results in backends().filter(|r| r.submit.per_second > 0.0) {
        let pgbench_p99 = match results.writes.as_ref().map(|w| (&w.one, w.clients)) {
            Some((Ok(one), Some(_))) => format!("; pgbench's own p99 {:.1} ms", one.p99_ms),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  SubmitLead p99 < 25 ms at {} callers on {}: {} ({:.1} ms{pgbench_p99})\n",
            args.concurrency,
            results.name,
            verdict(results.submit.p99_ms < 25.0),
            results.submit.p99_ms,
        ));
    }
    for results in backends() {
        let worst = write_scenarios(results)
            .filter_map(|(scenario, f)| f.lag.as_ref().map(|lag| (scenario, lag.p99_ms)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((scenario, p99)) = worst {
            out.push_str(&format!(
                "  sequencer lag p99 < 100 ms in every write scenario on {}: {} (worst {p99:.1} ms, {scenario})\n",
                results.name,
                verdict(p99 < 100.0),
            ));
        }
    }
    let measured_get = [Some(sqlite), postgres]
        .into_iter()
        .flatten()
        .filter(|r| r.bare_get.per_second > 0.0);
    for results in measured_get {
        let ratio = results.get.per_second / results.bare_get.per_second;
        let to_health = results.get.per_second / results.bare.per_second;
        let target = if results.name == "SQLite" { 0.6 } else { 0.5 };
        out.push_str(&format!(
            "  GetLead on {} >= {:.0}% of bare tonic answering GetLead: {} ({:.0}%; {:.0}% of bare health checks)\n",
            results.name,
            target * 100.0,
            verdict(ratio >= target),
            ratio * 100.0,
            to_health * 100.0
        ));
    }
    let rss = [
        &sqlite.submit,
        &sqlite.resubmit,
        &sqlite.replay,
        &sqlite.engage,
        &sqlite.get,
        &sqlite.mixed,
    ]
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
                &r.resubmit,
                &r.replay,
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

/// The scenarios that write, by name.
fn write_scenarios(results: &BackendResults) -> impl Iterator<Item = (&'static str, &Figures)> {
    [
        ("SubmitLead (new)", &results.submit),
        ("SubmitLead (known)", &results.resubmit),
        ("RecordEngagement", &results.engage),
        ("mixed", &results.mixed),
    ]
    .into_iter()
}
