//! Load generator for the sign-in's second factor, over the JSON API on loopback.
//! Every answer is checked (a correct code must end in a session; a wrong one must be
//! refused; a locked member's must get 429), latencies are kept per request, and the
//! server's CPU time and memory are read from `/proc/PID`.
//!
//! Modes (the flows file is what `seed` wrote: `FLOW_TOKEN SECRET_HEX EMAIL`):
//! - `correct`: one right code per flow, each flow used once.
//! - `wrong`: one wrong code per flow.
//! - `locked`: locks the first `--locked-members` flows' members with wrong codes
//!   (untimed), then sends wrong codes to them for `--seconds`: every answer must be
//!   429, and none may write.
//! - `signin`: full sign-ins (email, password, code) of the flows' members.
//!
//! Prints one line of figures and, with `--json`, a JSON object; exits 1 when a
//! figure misses a limit given on the command line (`--min-rate`, `--max-p99-ms`,
//! `--min-ratio` with `--floor`), 2 when an answer was not what it must be.

// A benchmark tool: its indexes are into lists it made itself, and JSON lookups of
// a missing key give Null (which the checks then refuse).
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use clinic_auth_core::UnixTime;
use clinic_auth_core::totp::{TotpSecret, code_at};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Mode {
    Correct,
    Wrong,
    Locked,
    Signin,
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    base: String,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    flows: std::path::PathBuf,
    /// Use the flows file's lines from `skip`…
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// …up to `take` of them (all by default).
    #[arg(long)]
    take: Option<usize>,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop after this long even when flows are left (for `locked`: how long to send).
    /// Given twice, the last one counts.
    #[arg(long, default_value_t = 10.0, overrides_with = "seconds")]
    seconds: f64,
    /// The server's process id, for CPU time and memory.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value = "correct horse battery staple bench")]
    password: String,
    #[arg(long, default_value_t = 8)]
    locked_members: usize,
    /// A label printed with the figures.
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long)]
    min_rate: Option<f64>,
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// A floor measured in the same run (per second) and the least share of it to reach.
    #[arg(long)]
    floor: Option<f64>,
    #[arg(long)]
    min_ratio: Option<f64>,
    #[arg(long)]
    max_peak_mib: Option<f64>,
    /// A shell command printing the number of audit events, run before and after the
    /// timed part (`locked`: the locking answers are not counted).
    #[arg(long)]
    count_cmd: Option<String>,
    /// The most audit events the timed part may write (with `--count-cmd`).
    #[arg(long)]
    max_writes: Option<i64>,
    #[arg(long)]
    json: bool,
}

fn audit_count(cmd: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(cmd) = cmd else { return Ok(None) };
    let out = std::process::Command::new("bash").arg("-c").arg(cmd).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(Some(text.trim().parse().with_context(|| format!("{cmd:?} printed {text:?}"))?))
}

struct Flow {
    token: String,
    secret: TotpSecret,
    email: String,
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

fn read_flows(args: &Args) -> anyhow::Result<Vec<Flow>> {
    let text = std::fs::read_to_string(&args.flows).context("reading the flows file")?;
    let lines = text.lines().skip(args.skip).take(args.take.unwrap_or(usize::MAX));
    lines
        .map(|l| {
            let mut parts = l.split(' ');
            let (Some(token), Some(secret), Some(email)) = (parts.next(), parts.next(), parts.next()) else {
                bail!("bad line in the flows file: {l:?}")
            };
            let bytes = (0..secret.len())
                .step_by(2)
                .map(|i| secret.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()
                .context("the secret is not hex")?;
            Ok(Flow { token: token.into(), secret: TotpSecret::from_bytes(bytes)?, email: email.into() })
        })
        .collect()
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
#[derive(Clone, Copy, Default)]
struct ProcStat {
    cpu_secs: f64,
    rss_mib: f64,
    peak_mib: f64,
}

fn proc_stat(pid: Option<u32>) -> ProcStat {
    let Some(pid) = pid else { return ProcStat::default() };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let cpu_secs = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ProcStat { cpu_secs, rss_mib: kib("VmRSS:") / 1024.0, peak_mib: kib("VmHWM:") / 1024.0 }
}

/// What one request was, and how long it took.
struct Outcome {
    micros: u64,
    ok: bool,
    problem: Option<String>,
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let res = client.post(url).json(&body).send().await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn one(args: &Args, client: &reqwest::Client, flow: &Flow) -> Outcome {
    let base = &args.base;
    let started = Instant::now();
    let result: anyhow::Result<Option<String>> = async {
        match args.mode {
            Mode::Correct => {
                let code = code_at(&flow.secret, now());
                let (status, body) =
                    post(client, &format!("{base}/api/v1/login/{}/code", flow.token), json!({"code": code})).await?;
                Ok((status != 200 || body["next"] != "done" || !body["session_token"].is_string())
                    .then(|| format!("correct code: {status} {body}")))
            }
            Mode::Wrong | Mode::Locked => {
                let code = wrong_code(&flow.secret);
                let (status, body) =
                    post(client, &format!("{base}/api/v1/login/{}/code", flow.token), json!({"code": code})).await?;
                let expected = if args.mode == Mode::Locked { status == 429 } else { status == 401 || status == 400 };
                Ok((!expected).then(|| format!("{:?} code: {status} {body}", args.mode)))
            }
            Mode::Signin => {
                let (status, body) =
                    post(client, &format!("{base}/api/v1/login"), json!({"email": flow.email})).await?;
                let Some(id) = body["flow_id"].as_str().filter(|_| status == 201) else {
                    return Ok(Some(format!("start: {status} {body}")));
                };
                let (status, body) =
                    post(client, &format!("{base}/api/v1/login/{id}/password"), json!({"password": args.password}))
                        .await?;
                if status != 200 || body["next"] != "second_factor" {
                    return Ok(Some(format!("password: {status} {body}")));
                }
                let code = code_at(&flow.secret, now());
                let (status, body) =
                    post(client, &format!("{base}/api/v1/login/{id}/code"), json!({"code": code})).await?;
                Ok((status != 200 || body["next"] != "done").then(|| format!("sign-in code: {status} {body}")))
            }
        }
    }
    .await;
    let micros = started.elapsed().as_micros() as u64;
    match result {
        Ok(None) => Outcome { micros, ok: true, problem: None },
        Ok(Some(p)) => Outcome { micros, ok: false, problem: Some(p) },
        Err(e) => Outcome { micros, ok: false, problem: Some(format!("request failed: {e:#}")) },
    }
}

/// A code that is none of the window's three right ones.
fn wrong_code(secret: &TotpSecret) -> String {
    let t = now();
    let right: Vec<String> = (-1..=1).map(|d| code_at(secret, UnixTime(t.0 + d * 30))).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (123_457 + n * 7919) % 1_000_000))
        .find(|c| !right.contains(c))
        .unwrap_or_default()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    clinic_auth_notify::install_default_crypto_provider();
    let args = Arc::new(Args::parse());
    let flows = Arc::new(read_flows(&args)?);
    if flows.is_empty() {
        bail!("no flows to use");
    }
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(30)).build()?;

    let mut targets: Vec<usize> = (0..flows.len()).collect();
    if args.mode == Mode::Locked {
        // Lock the members first: wrong codes until the server answers 429. A sign-in
        // ends after a few wrong codes, before the member's lockout, so each member
        // has several flows (seed --flows) and the next one carries on.
        let mut by_member: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            match by_member.iter_mut().find(|(e, _)| *e == f.email) {
                Some((_, v)) => v.push(i),
                None => by_member.push((&f.email, vec![i])),
            }
        }
        targets.clear();
        'member: for (email, indexes) in by_member.into_iter().take(args.locked_members) {
            for &i in &indexes {
                let url = format!("{}/api/v1/login/{}/code", args.base, flows[i].token);
                for _ in 0..20 {
                    let (status, _) = post(&client, &url, json!({"code": wrong_code(&flows[i].secret)})).await?;
                    match status {
                        429 => {
                            targets.push(i);
                            continue 'member;
                        }
                        400 | 401 => {}
                        _ => break, // this sign-in is over: the member's next one
                    }
                }
            }
            bail!("{email} was not locked by wrong codes on {} sign-ins", indexes.len());
        }
    }
    let targets = Arc::new(targets);

    // Every client's keep-alive connection is opened before the clock starts: the
    // run measures answers, not 64 TCP handshakes landing at once.
    let opened = (0..args.concurrency).map(|_| {
        let (client, url) = (client.clone(), format!("{}/healthz", args.base));
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().is_success()) })
    });
    for o in opened.collect::<Vec<_>>() {
        if !o.await?? {
            bail!("the server is not healthy");
        }
    }

    let count_before = audit_count(args.count_cmd.as_deref())?;
    let before = proc_stat(args.pid);
    let me_before = proc_stat(Some(std::process::id()));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (args, client, flows, targets, next, stop) =
            (args.clone(), client.clone(), flows.clone(), targets.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let flow = if args.mode == Mode::Locked {
                    &flows[targets[i % targets.len()]]
                } else if i < targets.len() {
                    &flows[targets[i]]
                } else {
                    break;
                };
                let o = one(&args, &client, flow).await;
                if !o.ok && out.iter().filter(|o: &&Outcome| !o.ok).count() > 100 {
                    stop.store(true, Ordering::Relaxed);
                }
                out.push(o);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = proc_stat(args.pid);
    let me_after = proc_stat(Some(std::process::id()));
    let count_after = audit_count(args.count_cmd.as_deref())?;
    let writes = count_before.zip(count_after).map(|(b, a)| a - b);

    let failures: Vec<&Outcome> = all.iter().filter(|o| !o.ok).collect();
    let mut micros: Vec<u64> = all.iter().filter(|o| o.ok).map(|o| o.micros).collect();
    micros.sort_unstable();
    let rate = micros.len() as f64 / elapsed;
    let (p50, p99) = (percentile(&micros, 0.50), percentile(&micros, 0.99));
    let per_req = |secs: f64| if all.is_empty() { 0.0 } else { secs * 1000.0 / all.len() as f64 };
    let cpu_ms = per_req(after.cpu_secs - before.cpu_secs);
    // This generator runs on the same cores: what it takes is not the server's.
    let load_cpu_ms = per_req(me_after.cpu_secs - me_before.cpu_secs);
    let ratio = args.floor.map(|f| rate / f);
    let line = format!(
        "{:<28} c={:<3} {:>7} ok in {:>5.1}s  {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  server CPU {:.3} ms/req (load generator {:.3})  rss {:.0} MiB (peak {:.0} MiB){}",
        args.label,
        args.concurrency,
        micros.len(),
        elapsed,
        rate,
        p50,
        p99,
        cpu_ms,
        load_cpu_ms,
        after.rss_mib,
        after.peak_mib,
        ratio
            .map(|r| format!("  {:.1}% of the floor {:.0}/s", r * 100.0, args.floor.unwrap_or(0.0)))
            .unwrap_or_default(),
    );
    let line = match writes {
        Some(n) => format!("{line}  audit events written: {n}"),
        None => line,
    };
    println!("{line}");
    if args.json {
        println!(
            "{}",
            json!({"label": args.label, "mode": format!("{:?}", args.mode), "concurrency": args.concurrency,
                   "ok": micros.len(), "failed": failures.len(), "seconds": elapsed, "rate": rate,
                   "p50_ms": p50, "p99_ms": p99, "server_cpu_ms_per_request": cpu_ms,
                   "load_cpu_ms_per_request": load_cpu_ms,
                   "rss_mib": after.rss_mib, "peak_mib": after.peak_mib, "floor": args.floor, "ratio": ratio,
                   "audit_events_written": writes})
        );
    }
    if !failures.is_empty() {
        for f in failures.iter().take(5) {
            eprintln!("  wrong answer: {}", f.problem.as_deref().unwrap_or("?"));
        }
        eprintln!("  {} of {} answers were not what they must be", failures.len(), all.len());
        std::process::exit(2);
    }
    let mut missed = Vec::new();
    if let Some(min) = args.min_rate
        && rate < min
    {
        missed.push(format!("{rate:.0}/s is under the target {min:.0}/s"));
    }
    if let Some(max) = args.max_p99_ms
        && p99 > max
    {
        missed.push(format!("p99 {p99:.2} ms is over the target {max} ms"));
    }
    if let (Some(r), Some(min)) = (ratio, args.min_ratio)
        && r < min
    {
        missed.push(format!("{:.1}% of the floor is under the target {:.0}%", r * 100.0, min * 100.0));
    }
    if let Some(max) = args.max_peak_mib
        && after.peak_mib > max
    {
        missed.push(format!("peak memory {:.0} MiB is over the target {max} MiB", after.peak_mib));
    }
    if let (Some(n), Some(max)) = (writes, args.max_writes)
        && n > max
    {
        missed.push(format!("{n} audit events were written, more than {max}"));
    }
    for m in &missed {
        println!("  MISSED: {m}");
    }
    if !missed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
