//! Argon2id password hashing, off the async workers and with bounded concurrency so a
//! burst of sign-ins queues here instead of starving every other request.
//!
//! Hashes run on a few dedicated threads rather than tokio's blocking pool: each hash
//! allocates 19 MiB, and the allocator keeps that per thread, so a pool that grows
//! under a burst would keep ~19 MiB for every thread it ever used (bench/ measured
//! 450 MiB after 16 clients). A fixed set of threads keeps it to a few of those.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use clinic_auth_core::{NewPassword, Password};
use zeroize::Zeroizing;

use crate::Error;

/// OWASP's recommended Argon2id parameters: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes waiting for a hashing thread (a gauge): steadily above zero means sign-ins
/// queue for the CPU.
pub const QUEUE_DEPTH: &str = "clinic_auth_password_hash_queue_depth";
/// How long each hash waited for a thread (a histogram, seconds).
pub const QUEUE_WAIT_SECONDS: &str = "clinic_auth_password_hash_wait_seconds";

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    /// Jobs for the hashing threads; they end when the last hasher is dropped.
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
    /// Verified for unknown accounts so that they cost the same time as known ones.
    dummy_hash: Arc<String>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// What verifying a password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash used older parameters; store a fresh one.
    pub needs_rehash: bool,
}

fn params() -> Result<Params, Error> {
    Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|e| Error::internal(format!("argon2 params: {e}")))
}

fn internal<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::internal(format!("argon2 {what}: {e}"))
}

thread_local! {
    /// This thread's Argon2 memory (19 MiB at our parameters), reused by every hash the
    /// thread runs instead of allocated and freed each time, which the allocator does
    /// not give back and fragments.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with `blocks` blocks of this thread's Argon2 memory. A stored hash with a
/// larger memory cost than ours gets memory of its own, not kept afterwards.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let ours = params().map(|p| p.block_count()).unwrap_or(0);
    if blocks > ours {
        return f(&mut vec![Block::new(); blocks]);
    }
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::new());
        }
        match m.get_mut(..blocks) {
            Some(mem) => f(mem),
            None => f(&mut vec![Block::new(); blocks]),
        }
    })
}

/// A new PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for `pw`.
fn hash_blocking(pw: &[u8]) -> Result<String, Error> {
    use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    use rand::RngCore;
    let params = params()?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = Zeroizing::new([0u8; 32]);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.block_count(), |mem| argon2.hash_password_into_with_memory(pw, &salt, out.as_mut(), mem))
        .map_err(|e| Error::internal(format!("argon2 hash: {e}")))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(internal("params"))?,
        salt: Some(Salt::new(&salt).map_err(internal("salt"))?),
        hash: Some(Output::new(out.as_ref()).map_err(internal("output"))?),
    };
    Ok(phc.to_string())
}

/// Whether `pw` matches the PHC string `stored` (any Argon2 variant and parameters),
/// compared in constant time.
fn verify_blocking(pw: &[u8], stored: &str) -> bool {
    use argon2::password_hash::phc::PasswordHash;
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm.as_str()), Params::try_from(&parsed))
    else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_memory(params.block_count(), |mem| {
        argon2.hash_password_into_with_memory(pw, salt.as_ref(), out.as_mut_slice(), mem)
    });
    computed.is_ok() && clinic_auth_core::token::secrets_equal_bytes(out.as_slice(), expected.as_bytes())
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads (at least one).
    pub fn new(concurrency: usize) -> PasswordHasher {
        // A hash of a random string nobody knows; made once at start, on a thread of
        // its own so that the caller's thread keeps no Argon2 memory.
        let seed = clinic_auth_core::SecretToken::generate();
        let dummy = std::thread::scope(|scope| scope.spawn(|| hash_blocking(seed.expose().as_bytes())).join())
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                loop {
                    // The lock is held only to take the next job, never while hashing.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A job that panics loses its answer (the request gets a 500),
                        // not the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return, // every sender is gone
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        PasswordHasher {
            jobs: Arc::new(Mutex::new(tx)),
            dummy_hash: Arc::new(dummy),
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let in_flight = self.in_flight.clone();
        let peak = self.peak.clone();
        let queued_at = std::time::Instant::now();
        metrics::gauge!(QUEUE_DEPTH).increment(1.0);
        let job: Job = Box::new(move || {
            metrics::gauge!(QUEUE_DEPTH).decrement(1.0);
            metrics::histogram!(QUEUE_WAIT_SECONDS).record(queued_at.elapsed().as_secs_f64());
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = done.send(out); // the request may have gone away meanwhile
        });
        self.jobs.lock().map_err(|_| Error::internal("hasher lock poisoned"))?.send(job).map_err(|_| {
            metrics::gauge!(QUEUE_DEPTH).decrement(1.0);
            Error::internal("password hashing threads are gone")
        })?;
        result.await.map_err(|_| Error::internal("a password hashing job was dropped"))
    }

    /// The most hashes that ever ran at once (for tests and metrics).
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub async fn hash(&self, pw: &NewPassword) -> Result<String, Error> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        self.run(move || hash_blocking(&pw)).await?
    }

    /// A fresh hash of a password that was just verified against older parameters.
    pub async fn rehash(&self, pw: &Password) -> Result<String, Error> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        self.run(move || hash_blocking(&pw)).await?
    }

    /// Verifies `pw` against `stored`, or against a dummy hash when there is no
    /// account or no password yet (the answer is then always "no match").
    pub async fn verify(&self, pw: &Password, stored: Option<&str>) -> Result<Verification, Error> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        let real = stored.is_some();
        let hash = stored.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        self.run(move || {
            let matches = verify_blocking(&pw, hash.as_str());
            let expected = format!("$argon2id$v=19$m={MEMORY_KIB},t={PASSES},p={LANES}$");
            Ok(Verification { matches: matches && real, needs_rehash: matches && real && !hash.starts_with(&expected) })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinic_auth_core::PasswordPolicy;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() -> Result<(), Error> {
        let h = PasswordHasher::new(2);
        let new = NewPassword::parse(
            Password::new("correct horse battery staple".into()),
            None,
            PasswordPolicy::default(),
            &[],
        )
        .map_err(|e| Error::internal(e.to_string()))?;
        let stored = h.hash(&new).await?;
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let right = Password::new("correct horse battery staple".into());
        let wrong = Password::new("correct horse battery stapler".into());
        assert_eq!(h.verify(&right, Some(&stored)).await?, Verification { matches: true, needs_rehash: false });
        assert!(!h.verify(&wrong, Some(&stored)).await?.matches);
        assert!(!h.verify(&right, None).await?.matches);
        Ok(())
    }

    #[test]
    fn our_hashes_and_the_crates_agree_both_ways() -> Result<(), Error> {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let ours = hash_blocking(b"correct horse battery staple")?;
        let crate_argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params()?);
        assert!(crate_argon2.verify_password(b"correct horse battery staple", ours.as_str()).is_ok());
        assert!(crate_argon2.verify_password(b"correct horse battery stapler", ours.as_str()).is_err());
        let theirs = crate_argon2.hash_password(b"correct horse battery staple").map_err(internal("hash"))?.to_string();
        assert!(verify_blocking(b"correct horse battery staple", &theirs));
        assert!(!verify_blocking(b"correct horse battery stapler", &theirs));
        for broken in ["", "$argon2id$v=19$m=19456,t=2,p=1$", "plain text", &theirs.replace("$v=19", "$v=99")] {
            assert!(!verify_blocking(b"correct horse battery staple", broken), "{broken}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() -> Result<(), Error> {
        use argon2::password_hash::PasswordHasher as _;
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).map_err(|e| Error::internal(e.to_string()))?,
        );
        let stored = weak
            .hash_password(b"correct horse battery staple")
            .map_err(|e| Error::internal(e.to_string()))?
            .to_string();
        let h = PasswordHasher::new(1);
        let v = h.verify(&Password::new("correct horse battery staple".into()), Some(&stored)).await?;
        assert_eq!(v, Verification { matches: true, needs_rehash: true });
        Ok(())
    }
}
