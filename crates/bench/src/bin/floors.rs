//! The machine's floors, measured in the same run as the load they are compared with:
//! - `sqlite`: bare single-row write transactions on a fresh SQLite file with the
//!   server's settings (WAL, synchronous=NORMAL), one connection, SQLite called
//!   directly as the server's driver calls it.
//! - `postgres`: bare single-row write transactions from `--concurrency` connections.
//! - `argon2`: password verifications at the server's Argon2id parameters on the
//!   server's hashing threads (`--threads`, one per core by default).
//!
//! Prints `floor NAME RATE` (per second).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use clinic_auth_app::PasswordHasher;
use clinic_auth_core::{NewPassword, Password, PasswordPolicy};

/// The server's allocator, so that the Argon2 floor hashes in memory from the same
/// allocator as the server's hashing threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, ValueEnum)]
enum Floor {
    Sqlite,
    Postgres,
    Argon2,
}

#[derive(Parser)]
struct Args {
    #[arg(value_enum)]
    floor: Floor,
    /// `sqlite`: the file to make (it is replaced); `postgres`: the database URL.
    #[arg(long)]
    target: Option<String>,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = Duration::from_secs_f64(args.seconds);
    let (name, rate) = match args.floor {
        Floor::Sqlite => ("sqlite_write_tx", sqlite(args.target.as_deref().context("--target FILE")?, seconds).await?),
        Floor::Postgres => (
            "postgres_write_tx",
            postgres(args.target.as_deref().context("--target URL")?, args.concurrency, seconds).await?,
        ),
        Floor::Argon2 => {
            let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            ("argon2_verify", argon2(threads, seconds).await?)
        }
    };
    println!("floor {name} {rate:.1}");
    Ok(())
}

async fn sqlite(path: &str, seconds: Duration) -> anyhow::Result<f64> {
    // SQLite itself, called directly (the server's driver): what one connection's
    // write transactions cost with nothing of ours around them.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, at INTEGER NOT NULL)")?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < seconds {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached("INSERT INTO t (v, at) VALUES (?1, ?2)")?.execute(rusqlite::params!["x", n as i64])?;
        conn.execute_batch("COMMIT")?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn postgres(url: &str, concurrency: usize, seconds: Duration) -> anyhow::Result<f64> {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(concurrency as u32).connect(url).await?;
    sqlx::query("DROP TABLE IF EXISTS bench_floor").execute(&pool).await?;
    sqlx::query("CREATE TABLE bench_floor (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL, at BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < seconds {
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO bench_floor (v, at) VALUES ($1, $2)")
                    .bind("x")
                    .bind(n as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_floor").execute(&pool).await?;
    Ok(rate)
}

async fn argon2(threads: usize, seconds: Duration) -> anyhow::Result<f64> {
    let hasher = Arc::new(PasswordHasher::new(threads));
    let pw = "correct horse battery staple bench";
    let new = NewPassword::parse(Password::new(pw.into()), None, PasswordPolicy::default(), &[])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let stored = Arc::new(hasher.hash(&new).await.map_err(|e| anyhow::anyhow!("{}", e.message))?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Twice as many callers as threads, so a thread never waits for work.
    for _ in 0..threads * 2 {
        let (hasher, stored) = (hasher.clone(), stored.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < seconds {
                let v = hasher
                    .verify(&Password::new(pw.into()), Some(&stored))
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                anyhow::ensure!(v.matches, "the floor's password did not verify");
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
