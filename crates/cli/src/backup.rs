//! `clinic-auth backup` and `clinic-auth restore` for the embedded SQLite store.
//!
//! A backup is `VACUUM INTO` a new file: one read transaction of SQLite, so it is a
//! consistent copy while the server goes on writing (every change committed before it
//! began is in it, none half). A restore puts one back with the server stopped: it
//! refuses while a `serve` holds the database's lock file, checks the copy (a SQLite
//! database, brought up to this version's migrations, its keyring opening a sealed
//! secret, its audit trail verifying), and only then swaps it in, keeping the database
//! it replaces beside it. The encryption key is never in a backup: keep it apart.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clinic_auth_app::{App, SystemClock};

use crate::settings::Settings;

/// The SQLite file `settings` name, or a refusal that says what to do for PostgreSQL.
pub fn sqlite_path(settings: &Settings, what: &str) -> anyhow::Result<PathBuf> {
    let url = settings.database_url();
    let Some(rest) = url.strip_prefix("sqlite:") else {
        bail!(
            "{what} works on the embedded SQLite store; for PostgreSQL use pg_dump / pg_restore \
             and keep the encryption key with the dump (see README, Operations)"
        );
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        bail!("{what} needs a database file, not {url}");
    }
    Ok(PathBuf::from(path))
}

/// The lock file beside the database that `serve` holds (shared) while it runs and
/// `restore` takes (exclusive): the operating system drops it when a process ends,
/// however it ends.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open_lock(db: &Path) -> anyhow::Result<File> {
    let path = lock_path(db);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))
}

/// Held by `serve` for as long as it runs on a SQLite database (several servers may
/// share it; a restore may not run beside any). `None` for PostgreSQL.
pub fn hold_serve_lock(settings: &Settings) -> anyhow::Result<Option<File>> {
    let Ok(db) = sqlite_path(settings, "serve") else { return Ok(None) };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = open_lock(&db)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("a restore is replacing {} right now; start the server when it has finished", db.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the database's lock file"),
    }
}

fn fsync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub struct BackedUp {
    pub file: PathBuf,
    pub bytes: u64,
}

/// `clinic-auth backup --to FILE`: a consistent copy of the running database.
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<BackedUp> {
    let db = sqlite_path(settings, "backup")?;
    if !db.exists() {
        bail!("there is no database at {} to back up", db.display());
    }
    if to.exists() {
        bail!("{} already exists; choose a new file name (a backup never overwrites)", to.display());
    }
    let partial = sibling(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    // The copy writes no audit event: a throwaway key opens the pool.
    let keys = clinic_auth_app::Sealer::from_keyring(&clinic_auth_app::Sealer::generate_keyring())?
        .audit_chain_keys()
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = clinic_auth_store::connect(&settings.database_url(), keys)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let partial_text = partial.to_str().context("the backup file's name is not UTF-8")?;
    let copied = store.sqlite_backup_into(partial_text).await.with_context(|| format!("writing {}", partial.display()));
    let _ = store.close().await;
    copied?;
    restrict(&partial)?;
    File::open(&partial).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("naming the backup {}", to.display()))?;
    fsync_dir(to);
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackedUp { file: to.to_owned(), bytes })
}

pub struct Restored {
    pub database: PathBuf,
    pub kept: Option<PathBuf>,
    pub events: i64,
    pub chains: usize,
    /// The signing key the keyring opened, if the backup had any sealed.
    pub opened_key: Option<String>,
}

/// `clinic-auth restore --from FILE`, with the server stopped.
pub async fn restore(settings: &Settings, from: &Path) -> anyhow::Result<Restored> {
    let db = sqlite_path(settings, "restore")?;
    let mut header = [0u8; 16];
    let readable = File::open(from).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
    if readable.is_err() || &header != b"SQLite format 3\0" {
        bail!("{} is not a clinic-auth backup (not a SQLite database)", from.display());
    }
    if settings.encryption_key.is_none() {
        let key_file = settings.encryption_key_file.clone().unwrap_or_else(|| settings.data_dir.join("encryption.key"));
        if !key_file.exists() {
            bail!(
                "the encryption key file {} is missing: put back the key that was in use when the backup was \
                 taken (backups do not contain it), or set encryption_key",
                key_file.display()
            );
        }
    }
    let lock = open_lock(&db)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "clinic-auth serve is running on {}: stop every server on this database first, then restore",
            db.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking the database's lock file"),
    }

    // Check a copy next to the database, so that the swap is a rename on one disk.
    let staged = sibling(&db, ".restoring");
    for stale in [staged.clone(), sibling(&staged, "-wal"), sibling(&staged, "-shm")] {
        let _ = std::fs::remove_file(stale);
    }
    std::fs::copy(from, &staged).with_context(|| format!("copying {} to {}", from.display(), staged.display()))?;
    restrict(&staged)?;
    let checked = check_staged(settings, &staged).await;
    let (events, chains, opened_key) = match checked {
        Ok(c) => c,
        Err(e) => {
            for stale in [staged.clone(), sibling(&staged, "-wal"), sibling(&staged, "-shm")] {
                let _ = std::fs::remove_file(stale);
            }
            return Err(e.context(format!("{} was not restored; the database is unchanged", from.display())));
        }
    };
    File::open(&staged).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", staged.display()))?;

    // Keep the database being replaced, with its write-ahead log: a log left beside
    // the restored file would be replayed into it.
    let kept = sibling(&db, ".before-restore");
    let had_db = db.exists();
    for suffix in ["", "-wal", "-shm"] {
        let (current, old) = (sibling(&db, suffix), sibling(&kept, suffix));
        let _ = std::fs::remove_file(&old);
        if current.exists() {
            std::fs::rename(&current, &old).with_context(|| format!("moving {} aside", current.display()))?;
        }
    }
    std::fs::rename(&staged, &db).with_context(|| format!("moving the restored database to {}", db.display()))?;
    fsync_dir(&db);
    drop(lock);
    Ok(Restored { database: db, kept: had_db.then_some(kept), events, chains, opened_key })
}

/// Migrates the staged copy and checks it under this server's keyring: a sealed
/// secret opens and the audit trail verifies. Every connection is closed after.
async fn check_staged(settings: &Settings, staged: &Path) -> anyhow::Result<(i64, usize, Option<String>)> {
    let sealer = settings.sealer()?;
    let keys = sealer.audit_chain_keys().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let url = format!("sqlite:{}", staged.display());
    let store = clinic_auth_store::connect(&url, keys).await.context("opening the backup")?;
    let result = async {
        store.migrate().await.context("bringing the backup up to this version's schema")?;
        let app = App::new(
            store.clone(),
            Arc::new(SystemClock),
            settings.web_config(settings.listen)?,
            sealer,
            settings.senders()?,
        );
        let opened = clinic_auth_app::oidc::keys::keyring_opens_a_sealed_key(&app).await.map_err(|_| {
            anyhow::anyhow!(
                "this server's encryption key does not open the secrets sealed in the backup: \
                 restore the key that was in use when the backup was taken"
            )
        })?;
        let verified = store.verify_audit(&Default::default()).await?;
        if !verified.breaks.is_empty() {
            let breaks: Vec<String> = verified.breaks.iter().map(ToString::to_string).collect();
            bail!("the backup's audit trail failed verification:\n  {}", breaks.join("\n  "));
        }
        Ok((verified.events, verified.chains, opened))
    }
    .await;
    let _ = store.close().await;
    result
}
