//! SQLite through a synchronous driver (rusqlite). A statement runs on the thread
//! that asks for it, start to finish, in microseconds: no hand-off to a connection
//! thread and back per statement (which cost ~85 µs each here, and made a
//! second-factor answer's ~20 statements the server's whole budget).
//!
//! One writer connection, behind an async gate that queues the process's writes
//! first come, first served (never in SQLite's busy handler); a write transaction
//! holds the gate until it ends. Readers are a small stack of connections: a
//! statement outside a transaction borrows one for its own run; in WAL mode they never
//! wait for the writer. Rows that stream (audit verify) are read on a blocking thread
//! and arrive through a bounded channel. Errors come out as `sqlx::Error`, the
//! store's one database error, with constraint kinds kept.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::Stream;
use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sqlx::error::{DatabaseError, ErrorKind};

/// Readers kept open when idle: reads are short, and each connection holds a page
/// cache of its own.
const IDLE_READERS: usize = 4;

/// Writes one batch holds at most before it commits, however many wait.
const MAX_BATCH: usize = 64;

/// Statements each connection keeps prepared: more than the store has.
const PREPARED_STATEMENTS: usize = 256;

/// Rows read ahead of a streaming consumer.
const STREAM_AHEAD: usize = 1024;

/// The WAL size (pages) at which the writer checkpoints itself: only when the
/// checkpoint thread has fallen far behind.
const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

/// How often the checkpoint thread copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies committed pages from the WAL into the database file on a thread of its
/// own, so that a commit never pays for it (by default the commit that crosses 1,000
/// pages checkpoints, on the writer, while every other write waits). A page written
/// by many commits between two checkpoints is copied once. Ends with the store.
fn checkpoints(path: &Path, alive: &std::sync::Weak<Mutex<Readers>>) {
    let mut conn = None;
    loop {
        // Woken early by `close`, which then waits for this thread to end.
        std::thread::park_timeout(CHECKPOINT_EVERY);
        match alive.upgrade() {
            Some(r) if !lock(&r).closed => {}
            _ => return,
        }
        if conn.is_none() {
            conn = open(path, false).ok();
        }
        if let Some(c) = &conn {
            // PASSIVE: copies what no reader still needs, never waits for anyone.
            if c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).is_err() {
                conn = None;
            }
        }
    }
}

/// A connection, or none once the store is closed (or while a stream reads on it).
type Slot = Arc<Mutex<Option<Connection>>>;

/// The SQLite database: its file, the writer and the idle readers.
#[derive(Clone)]
pub struct Lite {
    path: Arc<PathBuf>,
    gate: Arc<tokio::sync::Mutex<()>>,
    writer: Slot,
    readers: Arc<Mutex<Readers>>,
    checkpointer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// The write transaction several writes share until it commits (group commit).
    batch: Arc<Mutex<Option<Batch>>>,
    /// Writes waiting for their first turn at the writer.
    queued: Arc<AtomicUsize>,
    /// The most writes one committed batch has held.
    largest_batch: Arc<AtomicUsize>,
}

/// One SQLite transaction holding several writes, each in a savepoint of its own.
/// It commits when the writer's queue is empty (or it holds `MAX_BATCH` writes);
/// until then each write that is done waits, and its caller hears nothing: a write
/// is answered only once it is committed, with the batch's outcome.
struct Batch {
    writes: usize,
    done: tokio::sync::watch::Sender<Option<Result<(), Arc<str>>>>,
}

type Settled = tokio::sync::watch::Receiver<Option<Result<(), Arc<str>>>>;

struct Readers {
    idle: Vec<Connection>,
    /// Open readers, idle or lent.
    open: u32,
    closed: bool,
}

impl std::fmt::Debug for Lite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lite").field("path", &self.path).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves nothing half-done in memory that
    // a later statement could trip on: SQLite rolls back what it did not commit.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(path: &Path, create: bool) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // Only another process (an admin command) can hold the write lock.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

impl Lite {
    /// Opens (creating if missing) the database file in WAL mode.
    pub fn open(path: &Path) -> Result<Lite, sqlx::Error> {
        let writer = open(path, true).map_err(db_error)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(db_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(sqlx::Error::Configuration(format!("SQLite would not use WAL (journal_mode {mode})").into()));
        }
        // Checkpoints run beside the writer (see `checkpoints`); the writer's own only
        // when the WAL has grown well past what those leave.
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES).map_err(db_error)?;
        let readers = Arc::new(Mutex::new(Readers { idle: Vec::new(), open: 0, closed: false }));
        let (path, alive) = (Arc::new(path.to_owned()), Arc::downgrade(&readers));
        let to_check = path.clone();
        let checkpointer = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoints(&to_check, &alive))
            .map_err(sqlx::Error::Io)?;
        let lite = Lite {
            path,
            gate: Arc::new(tokio::sync::Mutex::new(())),
            writer: Arc::new(Mutex::new(Some(writer))),
            readers,
            checkpointer: Arc::new(Mutex::new(Some(checkpointer))),
            batch: Arc::new(Mutex::new(None)),
            queued: Arc::new(AtomicUsize::new(0)),
            largest_batch: Arc::new(AtomicUsize::new(0)),
        };
        Ok(lite)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (open, idle, max) connections, the writer counted.
    pub fn usage(&self) -> (u32, usize, u32) {
        let r = lock(&self.readers);
        let writer_idle = usize::from(self.gate.try_lock().is_ok());
        let max = u32::try_from(IDLE_READERS).unwrap_or(u32::MAX).max(r.open) + 1;
        (r.open + 1, r.idle.len() + writer_idle, max)
    }

    /// Closes every idle connection; later statements fail with `PoolClosed`.
    pub async fn close(&self) {
        let _gate = self.gate.lock().await;
        let _ = self.finish_batch();
        lock(&self.writer).take();
        {
            let mut r = lock(&self.readers);
            r.closed = true;
            r.open = r.open.saturating_sub(u32::try_from(r.idle.len()).unwrap_or(0));
            r.idle.clear();
        }
        // No connection of this store outlives `close` (a restore may replace the
        // file next).
        let thread = lock(&self.checkpointer).take();
        if let Some(t) = thread {
            t.thread().unpark();
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`, one read
    /// transaction) on a blocking thread: the copy takes as long as the database is
    /// large, and the server's threads go on serving meanwhile.
    pub async fn vacuum_into(&self, path: &str) -> Result<(), sqlx::Error> {
        let (lite, path) = (self.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            lite.with_reader(|c| c.execute("VACUUM INTO ?1", [&path]).map(drop).map_err(db_error))
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("backup thread: {e}")))?
    }

    /// A reader of its own, until it is given back.
    fn take_reader(&self) -> Result<Connection, sqlx::Error> {
        {
            let mut r = lock(&self.readers);
            if r.closed {
                return Err(sqlx::Error::PoolClosed);
            }
            if let Some(c) = r.idle.pop() {
                return Ok(c);
            }
            r.open += 1;
        }
        open(&self.path, false).map_err(|e| {
            lock(&self.readers).open -= 1;
            db_error(e)
        })
    }

    fn give_back(&self, conn: Connection) {
        let mut r = lock(&self.readers);
        if r.closed || r.idle.len() >= IDLE_READERS || !conn.is_autocommit() {
            r.open = r.open.saturating_sub(1);
            return;
        }
        r.idle.push(conn);
    }

    /// Runs `f` on a reader (outside any transaction).
    fn with_reader<R>(&self, f: impl FnOnce(&Connection) -> Result<R, sqlx::Error>) -> Result<R, sqlx::Error> {
        let conn = self.take_reader()?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs `f` on the writer, in its turn (outside any transaction): a write of its
    /// own, committed (with its batch) before this returns.
    async fn with_writer<R>(&self, f: impl FnOnce(&Connection) -> Result<R, sqlx::Error>) -> Result<R, sqlx::Error> {
        let tx = self.begin().await?;
        let out = f(lock(&tx.slot).as_ref().ok_or(sqlx::Error::PoolClosed)?)?;
        tx.commit().await?;
        Ok(out)
    }

    /// A write: waits its turn for the writer, then joins the open batch (or begins
    /// one, `BEGIN IMMEDIATE`) in a savepoint of its own.
    pub async fn begin(&self) -> Result<LiteTx, sqlx::Error> {
        let gate = self.first_turn().await;
        let settled = self.join_batch()?;
        Ok(LiteTx {
            slot: self.writer.clone(),
            kind: TxKind::Write { gate: Some(gate), settled: Some(settled) },
            lite: self.clone(),
            open: true,
        })
    }

    /// The writer's turn for a write not yet begun: counted as queued meanwhile, so
    /// that the write ahead leaves its batch open for this one.
    async fn first_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        /// Uncounts the wait however it ends; a wait given up (its request dropped)
        /// may have kept a batch open for nothing: commit it.
        struct Queued<'a>(&'a Lite, bool);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.queued.fetch_sub(1, Ordering::SeqCst);
                if !self.1 {
                    self.0.flush_later();
                }
            }
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut queued = Queued(self, false);
        let gate = self.gate.clone().lock_owned().await;
        queued.1 = true;
        gate
    }

    /// Commits the open batch, if any, in a task of its own (from `Drop`).
    fn flush_later(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let lite = self.clone();
            rt.spawn(async move {
                let _gate = lite.gate.lock().await;
                let _ = lite.finish_batch();
            });
        }
    }

    /// With the gate held: the open batch's savepoint for one more write.
    fn join_batch(&self) -> Result<Settled, sqlx::Error> {
        let slot = lock(&self.writer);
        let conn = slot.as_ref().ok_or(sqlx::Error::PoolClosed)?;
        let mut batch = lock(&self.batch);
        if let Some(b) = batch.as_ref()
            && conn.is_autocommit()
        {
            // SQLite ended the batch's transaction itself (an I/O error): its writes
            // are gone, and their callers must hear so.
            let _ = b.done.send(Some(Err("the write was lost: SQLite rolled its transaction back".into())));
            *batch = None;
        }
        if batch.is_none() {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(db_error)?;
            *batch = Some(Batch { writes: 0, done: tokio::sync::watch::Sender::new(None) });
        }
        let b = batch.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        if let Err(e) = conn.prepare_cached("SAVEPOINT w").and_then(|mut st| st.execute([])) {
            drop(batch);
            drop(slot);
            // Nothing of this write is in the batch; the others' must still commit.
            if self.queued.load(Ordering::SeqCst) == 0 {
                let _ = self.finish_batch();
            }
            return Err(db_error(e));
        }
        b.writes += 1;
        Ok(b.done.subscribe())
    }

    /// With the gate held: whether the open batch should commit now rather than wait
    /// for the writes queued behind.
    fn batch_is_due(&self) -> bool {
        self.queued.load(Ordering::SeqCst) == 0 || lock(&self.batch).as_ref().is_none_or(|b| b.writes >= MAX_BATCH)
    }

    /// With the gate held: commits the open batch and tells its writes how it went.
    fn finish_batch(&self) -> Result<(), sqlx::Error> {
        let Some(batch) = lock(&self.batch).take() else { return Ok(()) };
        self.largest_batch.fetch_max(batch.writes, Ordering::Relaxed);
        let slot = lock(&self.writer);
        let outcome: Result<(), Arc<str>> = match slot.as_ref() {
            None => Err("the store was closed".into()),
            Some(conn) if conn.is_autocommit() => Err("the write was lost: SQLite rolled its transaction back".into()),
            Some(conn) => conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                Arc::from(e.to_string())
            }),
        };
        let _ = batch.done.send(Some(outcome.clone()));
        outcome.map_err(|m| sqlx::Error::Protocol(m.to_string()))
    }

    /// A write that is done waits for its batch's commit: by the write whose turn
    /// ends with the queue empty, or by itself when its turn at the writer comes
    /// round again first.
    async fn settle(&self, mut settled: Settled) -> Result<(), sqlx::Error> {
        /// A wait given up (its request dropped) leaves the commit to a task.
        struct Waiting<'a>(&'a Lite, bool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.flush_later();
                }
            }
        }
        let mut waiting = Waiting(self, false);
        let outcome = loop {
            if let Some(o) = settled.borrow().clone() {
                break o;
            }
            tokio::select! {
                changed = settled.changed() => {
                    if changed.is_err() {
                        break Err("the write's batch ended without an outcome".into());
                    }
                }
                _turn = self.gate.clone().lock_owned() => {
                    // The turn is held (`_turn`) while the batch commits.
                    let known = settled.borrow().clone();
                    break match known {
                        Some(o) => o,
                        // Still open, so it is the batch this write is in.
                        None => self.finish_batch().map_err(|e| Arc::from(e.to_string())),
                    };
                }
            }
        };
        waiting.1 = true;
        outcome.map_err(|m| sqlx::Error::Protocol(m.to_string()))
    }

    /// A read transaction on a reader of its own: its statements see one snapshot.
    pub fn begin_read(&self) -> Result<LiteTx, sqlx::Error> {
        let conn = self.take_reader()?;
        if let Err(e) = conn.execute_batch("BEGIN") {
            self.give_back(conn);
            return Err(db_error(e));
        }
        Ok(LiteTx { slot: Arc::new(Mutex::new(Some(conn))), kind: TxKind::Read, lite: self.clone(), open: true })
    }
}

/// An open transaction; dropped without commit, it rolls back.
pub struct LiteTx {
    slot: Slot,
    kind: TxKind,
    lite: Lite,
    open: bool,
}

enum TxKind {
    /// A write: the writer's turn, held until the write is done, and how its batch's
    /// commit went.
    Write {
        gate: Option<tokio::sync::OwnedMutexGuard<()>>,
        settled: Option<Settled>,
    },
    Read,
}

impl LiteTx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let TxKind::Write { gate, settled } = &mut self.kind else {
            let slot = lock(&self.slot);
            slot.as_ref().ok_or(sqlx::Error::PoolClosed)?.execute_batch("COMMIT").map_err(db_error)?;
            drop(slot);
            self.open = false;
            return Ok(());
        };
        {
            let slot = lock(&self.slot);
            let conn = slot.as_ref().ok_or(sqlx::Error::PoolClosed)?;
            if conn.is_autocommit() {
                return Err(sqlx::Error::Protocol("the write was lost: SQLite rolled its transaction back".into()));
            }
            conn.prepare_cached("RELEASE w").and_then(|mut st| st.execute([])).map_err(db_error)?;
        }
        self.open = false;
        let (gate, settled) = (gate.take(), settled.take().ok_or(sqlx::Error::PoolClosed)?);
        if self.lite.batch_is_due() {
            let done = self.lite.finish_batch();
            drop(gate);
            return done;
        }
        drop(gate);
        self.lite.settle(settled).await
    }
}

impl Drop for LiteTx {
    fn drop(&mut self) {
        let mut slot = lock(&self.slot);
        let in_tx = slot.as_ref().is_some_and(|c| !c.is_autocommit());
        match &mut self.kind {
            TxKind::Write { gate, .. } => {
                if self.open && in_tx {
                    // Undoes this write only; the batch's others stay.
                    if let Some(conn) = slot.as_ref() {
                        let _ = conn.execute_batch("ROLLBACK TO w; RELEASE w");
                    }
                }
                drop(slot);
                if let Some(g) = gate.take() {
                    if self.lite.batch_is_due() {
                        let _ = self.lite.finish_batch();
                    }
                    drop(g);
                }
            }
            TxKind::Read => {
                if self.open
                    && in_tx
                    && let Some(conn) = slot.as_ref()
                {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                if let Some(conn) = slot.take() {
                    self.lite.give_back(conn);
                }
            }
        }
    }
}

/// Where a statement runs.
pub enum LiteOn<'c> {
    Pool(&'c Lite),
    Tx(&'c LiteTx),
}

/// A statement and its arguments so far.
pub struct LiteStmt<'c> {
    sql: Arc<str>,
    args: Vec<Value>,
    /// An argument that could not be turned into an SQLite value.
    bad_arg: Option<String>,
    on: LiteOn<'c>,
}

/// A row, its values owned.
pub struct LiteRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl LiteRow {
    pub fn try_get<T: FromSql>(&self, column: &str) -> Result<T, sqlx::Error> {
        let value = self
            .columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))?;
        T::column_result(ValueRef::from(value))
            .map_err(|e| sqlx::Error::ColumnDecode { index: format!("{column:?}"), source: Box::new(e) })
    }
}

impl<'c> LiteStmt<'c> {
    pub fn new(sql: Arc<str>, on: LiteOn<'c>) -> Self {
        LiteStmt { sql, args: Vec::new(), bad_arg: None, on }
    }

    pub fn bind<T: ToSql>(mut self, value: T) -> Self {
        match value.to_sql() {
            Ok(ToSqlOutput::Borrowed(v)) => self.args.push(Value::column_result(v).unwrap_or(Value::Null)),
            Ok(ToSqlOutput::Owned(v)) => self.args.push(v),
            Ok(_) => self.bad_arg = Some(format!("argument {} has no SQLite value", self.args.len() + 1)),
            Err(e) => self.bad_arg = Some(e.to_string()),
        }
        self
    }

    /// Runs `f` with the statement prepared and bound, where it runs.
    async fn run<R>(
        self,
        f: impl FnOnce(&Connection, &mut rusqlite::Statement<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, sqlx::Error> {
        if let Some(e) = self.bad_arg {
            return Err(sqlx::Error::Encode(e.into()));
        }
        let (sql, args) = (self.sql, self.args);
        let go = |conn: &Connection| -> Result<R, sqlx::Error> {
            let mut st = conn.prepare_cached(&sql).map_err(db_error)?;
            for (i, a) in args.iter().enumerate() {
                st.raw_bind_parameter(i + 1, a).map_err(db_error)?;
            }
            f(conn, &mut st).map_err(db_error)
        };
        match self.on {
            LiteOn::Pool(lite) if is_read(&sql) => lite.with_reader(go),
            LiteOn::Pool(lite) => lite.with_writer(go).await,
            LiteOn::Tx(tx) => go(lock(&tx.slot).as_ref().ok_or(sqlx::Error::PoolClosed)?),
        }
    }

    /// Runs the statement; the rows it changed.
    pub async fn execute(self) -> Result<u64, sqlx::Error> {
        let read = is_read(&self.sql);
        self.run(|conn, st| {
            let mut rows = st.raw_query();
            while rows.next()?.is_some() {}
            // The changes of the statement just run, on its connection.
            Ok(if read { 0 } else { conn.changes() })
        })
        .await
    }

    /// Every row (a statement with `RETURNING` runs to its end even when one is kept).
    pub async fn fetch_all(self) -> Result<Vec<LiteRow>, sqlx::Error> {
        self.run(|_, st| {
            let columns: Arc<[String]> = st.column_names().into_iter().map(str::to_owned).collect();
            let n = columns.len();
            let mut out = Vec::new();
            let mut rows = st.raw_query();
            while let Some(r) = rows.next()? {
                let values = (0..n).map(|i| r.get::<_, Value>(i)).collect::<rusqlite::Result<_>>()?;
                out.push(LiteRow { columns: columns.clone(), values });
            }
            Ok(out)
        })
        .await
    }

    pub async fn fetch_optional(self) -> Result<Option<LiteRow>, sqlx::Error> {
        Ok(self.fetch_all().await?.into_iter().next())
    }

    pub async fn fetch_one(self) -> Result<LiteRow, sqlx::Error> {
        self.fetch_optional().await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// The rows as they are read, on a blocking thread that holds the connection
    /// (a reader of its own, or the transaction's) until the last row or until the
    /// stream is dropped.
    pub fn fetch(self) -> impl Stream<Item = Result<LiteRow, sqlx::Error>> + Send + 'c {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<LiteRow, sqlx::Error>>(STREAM_AHEAD);
        let start = || -> Result<(), sqlx::Error> {
            if let Some(e) = &self.bad_arg {
                return Err(sqlx::Error::Encode(e.clone().into()));
            }
            let (sql, args) = (self.sql.clone(), self.args.clone());
            match &self.on {
                LiteOn::Tx(t) => {
                    let slot = t.slot.clone();
                    tokio::task::spawn_blocking(move || {
                        let guard = lock(&slot);
                        let Some(conn) = guard.as_ref() else {
                            let _ = tx.blocking_send(Err(sqlx::Error::PoolClosed));
                            return;
                        };
                        stream_rows(conn, &sql, &args, &tx);
                    });
                }
                LiteOn::Pool(lite) => {
                    let lite = (*lite).clone();
                    let conn = lite.take_reader()?;
                    tokio::task::spawn_blocking(move || {
                        stream_rows(&conn, &sql, &args, &tx);
                        lite.give_back(conn);
                    });
                }
            }
            Ok(())
        };
        let first = start().err();
        futures_util::stream::unfold((first, rx), |(first, mut rx)| async move {
            if let Some(e) = first {
                return Some((Err(e), (None, rx)));
            }
            rx.recv().await.map(|r| (r, (None, rx)))
        })
    }
}

/// Sends the rows of `sql` down `tx` until the last or until nobody listens.
fn stream_rows(
    conn: &Connection,
    sql: &str,
    args: &[Value],
    tx: &tokio::sync::mpsc::Sender<Result<LiteRow, sqlx::Error>>,
) {
    let run = || -> rusqlite::Result<bool> {
        let mut st = conn.prepare_cached(sql)?;
        for (i, a) in args.iter().enumerate() {
            st.raw_bind_parameter(i + 1, a)?;
        }
        let columns: Arc<[String]> = st.column_names().into_iter().map(str::to_owned).collect();
        let n = columns.len();
        let mut rows = st.raw_query();
        while let Some(r) = rows.next()? {
            let values = (0..n).map(|i| r.get::<_, Value>(i)).collect::<rusqlite::Result<_>>()?;
            if tx.blocking_send(Ok(LiteRow { columns: columns.clone(), values })).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if let Err(e) = run() {
        let _ = tx.blocking_send(Err(db_error(e)));
    }
}

/// Whether a statement only reads: our SQL starts every read with `SELECT`.
pub fn is_read(sql: &str) -> bool {
    sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

/// An SQLite error as the store's database error, its constraint kind kept.
fn db_error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(..) => sqlx::Error::Database(Box::new(LiteError(e))),
        rusqlite::Error::QueryReturnedNoRows => sqlx::Error::RowNotFound,
        rusqlite::Error::FromSqlConversionFailure(i, ..)
        | rusqlite::Error::IntegralValueOutOfRange(i, _)
        | rusqlite::Error::InvalidColumnType(i, ..)
        | rusqlite::Error::Utf8Error(i, _) => sqlx::Error::ColumnDecode { index: i.to_string(), source: Box::new(e) },
        rusqlite::Error::ToSqlConversionFailure(e) => sqlx::Error::Encode(e),
        e => sqlx::Error::Protocol(e.to_string()),
    }
}

#[derive(Debug)]
struct LiteError(rusqlite::Error);

impl std::fmt::Display for LiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LiteError {}

impl DatabaseError for LiteError {
    fn message(&self) -> &str {
        match &self.0 {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m,
            _ => "SQLite error",
        }
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.0.sqlite_error().map(|e| Cow::Owned(e.extended_code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.0.sqlite_error().map(|e| e.extended_code) {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => ErrorKind::UniqueViolation,
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::atomic::Ordering;

    use super::{Lite, LiteOn, LiteStmt, MAX_BATCH};

    fn store() -> (tempfile::TempDir, Lite) {
        let dir = tempfile::tempdir().unwrap();
        let lite = Lite::open(&dir.path().join("t.db")).unwrap();
        (dir, lite)
    }

    async fn count(lite: &Lite) -> i64 {
        let row = LiteStmt::new("SELECT COUNT(*) AS n FROM t".into(), LiteOn::Pool(lite)).fetch_one().await.unwrap();
        row.try_get("n").unwrap()
    }

    async fn insert(lite: &Lite, v: i64, keep: bool) -> Result<(), sqlx::Error> {
        let tx = lite.begin().await?;
        LiteStmt::new("INSERT INTO t (v) VALUES (?1)".into(), LiteOn::Tx(&tx)).bind(v).execute().await?;
        tokio::task::yield_now().await;
        if keep { tx.commit().await } else { Ok(()) }
    }

    /// Writes racing from many tasks share batches: each kept write is committed (and
    /// seen by a reader) by the time its commit returns, and a dropped one is undone
    /// without taking its batch's others with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writes_commit_together_and_roll_back_alone() {
        let (_dir, lite) = store();
        LiteStmt::new("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)".into(), LiteOn::Pool(&lite))
            .execute()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for v in 0..400_i64 {
            let lite = lite.clone();
            tasks.push(tokio::spawn(async move {
                let keep = v % 3 != 0;
                insert(&lite, v, keep).await.unwrap();
                if keep {
                    // Committed: a reader (another connection) sees it now.
                    let row = LiteStmt::new("SELECT COUNT(*) AS n FROM t WHERE v = ?1".into(), LiteOn::Pool(&lite))
                        .bind(v)
                        .fetch_one()
                        .await
                        .unwrap();
                    assert_eq!(row.try_get::<i64>("n").unwrap(), 1, "write {v} not visible after its commit");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count(&lite).await, 400 - 134);
        // A failing statement fails its own write only.
        let dup = insert(&lite, 1, true).await.unwrap_err();
        assert!(dup.as_database_error().is_some_and(|d| d.is_unique_violation()), "{dup}");
        insert(&lite, 1000, true).await.unwrap();
        assert_eq!(count(&lite).await, 400 - 134 + 1);
        assert!(lock_free(&lite).await, "no batch is left holding the writer");
    }

    /// The bundled SQLite is built as `.cargo/config.toml` says: without the
    /// process-wide page-cache mutex and without memory statistics.
    #[test]
    fn sqlite_is_built_without_global_page_cache_and_memory_locks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut st = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(options.iter().all(|o| o != "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }

    /// Many writes queued at once share batches, and no batch grows past `MAX_BATCH`
    /// however many wait (a write's answer waits for its whole batch).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn queued_writes_share_batches_of_bounded_size() {
        let (_dir, lite) = store();
        LiteStmt::new("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)".into(), LiteOn::Pool(&lite))
            .execute()
            .await
            .unwrap();
        let writes = 20 * MAX_BATCH;
        let mut tasks = Vec::new();
        for v in 0..writes {
            let lite = lite.clone();
            tasks.push(tokio::spawn(async move { insert(&lite, i64::try_from(v).unwrap(), true).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count(&lite).await, i64::try_from(writes).unwrap());
        let largest = lite.largest_batch.load(Ordering::Relaxed);
        assert!(largest > 1, "{writes} queued writes never shared a commit");
        assert!(largest <= MAX_BATCH, "a batch held {largest} writes, over {MAX_BATCH}");
    }

    /// A write whose request is dropped while its batch waits, with the write queued
    /// behind it dropped too, does not leave the batch (and SQLite's write lock)
    /// open: it is committed anyway. One thread, so the test says when tasks run.
    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_left_by_dropped_requests_still_commits() {
        let (_dir, lite) = store();
        LiteStmt::new("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)".into(), LiteOn::Pool(&lite))
            .execute()
            .await
            .unwrap();
        let first = lite.begin().await.unwrap();
        LiteStmt::new("INSERT INTO t (v) VALUES (1)".into(), LiteOn::Tx(&first)).execute().await.unwrap();
        // A second write queues for the writer.
        let queued = tokio::spawn({
            let lite = lite.clone();
            async move { insert(&lite, 2, true).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(lite.queued.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The first is done with a write queued behind it: it leaves its batch open
        // for that one, hands it the writer and waits (polled once, here).
        let mut waiting = Box::pin(first.commit());
        tokio::select! {
            biased;
            _ = &mut waiting => panic!("the first write should wait for its batch"),
            () = std::future::ready(()) => {}
        }
        assert!(super::lock(&lite.batch).is_some());
        // Both requests are dropped before the queued one ever runs.
        drop(waiting);
        queued.abort();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !lock_free(&lite).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the batch was committed");
        assert_eq!(count(&lite).await, 1, "the first write, done before its request was dropped, is kept");
    }

    /// Whether another connection can take SQLite's write lock at once.
    async fn lock_free(lite: &Lite) -> bool {
        let other = rusqlite::Connection::open(lite.path()).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok()
    }
}
