//! Sealing secrets at rest (authenticator secrets) with AES-256-GCM.
//!
//! The keyring is text, one key a line: `VERSION:BASE64KEY` (a bare base64 key is
//! version 1). The highest version seals; every version opens, so a new key can be
//! added without losing what older keys sealed. Each sealed value has a fresh random
//! nonce and is bound (associated data) to its account and purpose, so a sealed secret
//! copied to another row does not open.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clinic_auth_store::SealedSecret;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::Error;

#[derive(Clone)]
pub struct Sealer {
    keys: BTreeMap<i64, Key<Aes256Gcm>>,
    current: i64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(current key version {}, {} keys)", self.current, self.keys.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("the encryption keyring is empty")]
    Empty,
    #[error("line {0} of the encryption keyring is not VERSION:BASE64 of a 32-byte key")]
    BadLine(usize),
    #[error("key version {0} appears twice in the encryption keyring")]
    Duplicate(i64),
}

impl Sealer {
    pub fn from_keyring(text: &str) -> Result<Sealer, KeyringError> {
        let mut keys = BTreeMap::new();
        for (i, line) in text.lines().map(str::trim).enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (version, b64) = match line.split_once(':') {
                Some((v, k)) => (v.trim().parse::<i64>().map_err(|_| KeyringError::BadLine(i + 1))?, k.trim()),
                None => (1, line),
            };
            let bytes = Zeroizing::new(STANDARD.decode(b64).map_err(|_| KeyringError::BadLine(i + 1))?);
            if bytes.len() != 32 || version < 1 {
                return Err(KeyringError::BadLine(i + 1));
            }
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyringError::BadLine(i + 1))?;
            if keys.insert(version, Key::<Aes256Gcm>::from(key)).is_some() {
                return Err(KeyringError::Duplicate(version));
            }
        }
        let current = *keys.keys().next_back().ok_or(KeyringError::Empty)?;
        Ok(Sealer { keys, current })
    }

    /// A new keyring with one random key, for a first start.
    pub fn generate_keyring() -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        format!(
            "# clinic-auth encryption keys: VERSION:BASE64. Keep secret; back up with the database.\n1:{}\n",
            STANDARD.encode(key.as_ref())
        )
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<SealedSecret, Error> {
        let key = self.keys.get(&self.current).ok_or_else(|| Error::internal("no current key"))?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = Aes256Gcm::new(key)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| Error::internal("sealing a secret failed"))?;
        Ok(SealedSecret { ciphertext, nonce: nonce.to_vec(), key_version: self.current })
    }

    /// A keyed hash (HMAC-SHA-256) of a short code, for storing emailed and texted codes:
    /// a million possible codes would fall to a plain hash at once, but not to one
    /// keyed with the server's secret.
    pub fn code_mac(&self, code: &str, context: &str) -> Result<String, Error> {
        use hmac::{Hmac, Mac};
        let key = self.keys.get(&self.current).ok_or_else(|| Error::internal("no current key"))?;
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map_err(|_| Error::internal("code MAC key"))?;
        mac.update(b"clinic-auth code mac\0");
        mac.update(context.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        Ok(mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The audit chain's MAC keys, one per keyring version, each derived with HMAC
    /// from its encryption key (never the encryption key itself).
    pub fn audit_chain_keys(&self) -> Result<clinic_auth_core::audit::ChainKeys, Error> {
        use hmac::{Hmac, Mac};
        let derived = self
            .keys
            .iter()
            .map(|(version, key)| {
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                    .map_err(|_| Error::internal("audit key derivation"))?;
                mac.update(b"clinic-auth audit chain key v1");
                let mut out = Zeroizing::new([0u8; 32]);
                out.copy_from_slice(&mac.finalize().into_bytes());
                Ok((*version, out))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        clinic_auth_core::audit::ChainKeys::new(derived).ok_or_else(|| Error::internal("empty keyring"))
    }

    pub fn open(&self, sealed: &SealedSecret, context: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let key = self.keys.get(&sealed.key_version).ok_or_else(|| {
            Error::internal(format!("encryption key version {} is not in the keyring", sealed.key_version))
        })?;
        if sealed.nonce.len() != 12 {
            return Err(Error::internal("sealed secret has a bad nonce"));
        }
        let nonce: [u8; 12] =
            sealed.nonce.as_slice().try_into().map_err(|_| Error::internal("sealed secret has a bad nonce"))?;
        Aes256Gcm::new(key)
            .decrypt(&Nonce::from(nonce), Payload { msg: &sealed.ciphertext, aad: context.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| Error::internal("a sealed secret did not open (wrong key or tampered row)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_context() {
        let s = Sealer::from_keyring(&Sealer::generate_keyring()).unwrap();
        let sealed = s.seal(b"totp secret", "totp:alice").unwrap();
        assert!(!sealed.ciphertext.windows(4).any(|w| w == b"totp"), "ciphertext hides the plaintext");
        assert_eq!(s.open(&sealed, "totp:alice").unwrap().as_slice(), b"totp secret");
        assert!(s.open(&sealed, "totp:bob").is_err(), "bound to its account");
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(s.open(&tampered, "totp:alice").is_err());
        assert_ne!(s.seal(b"x", "c").unwrap().nonce, s.seal(b"x", "c").unwrap().nonce, "fresh nonce each time");
    }

    #[test]
    fn new_keys_seal_and_old_keys_still_open() {
        let old = Sealer::from_keyring(&Sealer::generate_keyring()).unwrap();
        let sealed = old.seal(b"secret", "ctx").unwrap();
        // A keyring with the old key as version 1 and a new version 2.
        let v1: &[u8] = &old.keys[&1];
        let v1 = STANDARD.encode(v1);
        let v2 = Sealer::generate_keyring().lines().find(|l| l.starts_with("1:")).unwrap().replacen("1:", "2:", 1);
        let both = Sealer::from_keyring(&format!("1:{v1}\n{v2}\n")).unwrap();
        assert_eq!(both.seal(b"n", "ctx").unwrap().key_version, 2);
        assert_eq!(both.open(&sealed, "ctx").unwrap().as_slice(), b"secret");
    }

    #[test]
    fn code_macs_depend_on_key_context_and_code() {
        let a = Sealer::from_keyring(&Sealer::generate_keyring()).unwrap();
        let b = Sealer::from_keyring(&Sealer::generate_keyring()).unwrap();
        let m = a.code_mac("123456", "email:alice").unwrap();
        assert_eq!(m.len(), 64);
        assert_eq!(m, a.code_mac("123456", "email:alice").unwrap());
        assert_ne!(m, a.code_mac("123457", "email:alice").unwrap());
        assert_ne!(m, a.code_mac("123456", "email:bob").unwrap());
        assert_ne!(m, b.code_mac("123456", "email:alice").unwrap());
    }

    #[test]
    fn bad_keyrings_are_refused() {
        assert_eq!(Sealer::from_keyring("").err(), Some(KeyringError::Empty));
        assert_eq!(Sealer::from_keyring("1:short").err(), Some(KeyringError::BadLine(1)));
        let k = STANDARD.encode([7u8; 32]);
        assert!(Sealer::from_keyring(&k).is_ok(), "a bare key is version 1");
        assert_eq!(Sealer::from_keyring(&format!("1:{k}\n1:{k}")).err(), Some(KeyringError::Duplicate(1)));
        assert_eq!(Sealer::from_keyring(&format!("x:{k}")).err(), Some(KeyringError::BadLine(1)));
    }
}
