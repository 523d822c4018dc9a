//! Argon2id password hashing, off the async workers and with bounded concurrency so a
//! burst of sign-ins queues here instead of starving every other request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use clinic_auth_core::{NewPassword, Password};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::AppError;

/// OWASP's recommended Argon2id parameters: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
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

fn argon2() -> Result<Argon2<'static>, AppError> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|e| AppError::internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(pw: &[u8]) -> Result<String, AppError> {
    argon2()?.hash_password(pw).map(|h| h.to_string()).map_err(|e| AppError::internal(format!("argon2 hash: {e}")))
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> PasswordHasher {
        // A hash of a random string nobody knows; made once at start.
        let seed = clinic_auth_core::SecretToken::generate();
        let dummy = hash_blocking(seed.expose().as_bytes()).unwrap_or_default();
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(dummy),
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
        let _permit = self.permits.acquire().await.map_err(|e| AppError::internal(format!("hasher closed: {e}")))?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = tokio::task::spawn_blocking(f).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result.map_err(|e| AppError::internal(format!("hashing task: {e}")))
    }

    /// The most hashes that ever ran at once (for tests and metrics).
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub async fn hash(&self, pw: &NewPassword) -> Result<String, AppError> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        self.run(move || hash_blocking(&pw)).await?
    }

    /// A fresh hash of a password that was just verified against older parameters.
    pub async fn rehash(&self, pw: &Password) -> Result<String, AppError> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        self.run(move || hash_blocking(&pw)).await?
    }

    /// Verifies `pw` against `stored`, or against a dummy hash when there is no
    /// account or no password yet (the answer is then always "no match").
    pub async fn verify(&self, pw: &Password, stored: Option<&str>) -> Result<Verification, AppError> {
        let pw = Zeroizing::new(pw.expose().as_bytes().to_vec());
        let real = stored.is_some();
        let hash = stored.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        self.run(move || {
            let a = argon2()?;
            let matches = a.verify_password(&pw, hash.as_str()).is_ok();
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
    async fn hashes_verify_and_unknown_accounts_never_match() -> Result<(), AppError> {
        let h = PasswordHasher::new(2);
        let new = NewPassword::parse(
            Password::new("correct horse battery staple".into()),
            None,
            PasswordPolicy::default(),
            &[],
        )
        .map_err(|e| AppError::internal(e.to_string()))?;
        let stored = h.hash(&new).await?;
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let right = Password::new("correct horse battery staple".into());
        let wrong = Password::new("correct horse battery stapler".into());
        assert_eq!(h.verify(&right, Some(&stored)).await?, Verification { matches: true, needs_rehash: false });
        assert!(!h.verify(&wrong, Some(&stored)).await?.matches);
        assert!(!h.verify(&right, None).await?.matches);
        Ok(())
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() -> Result<(), AppError> {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).map_err(|e| AppError::internal(e.to_string()))?,
        );
        let stored = weak
            .hash_password(b"correct horse battery staple")
            .map_err(|e| AppError::internal(e.to_string()))?
            .to_string();
        let h = PasswordHasher::new(1);
        let v = h.verify(&Password::new("correct horse battery staple".into()), Some(&stored)).await?;
        assert_eq!(v, Verification { matches: true, needs_rehash: true });
        Ok(())
    }
}
