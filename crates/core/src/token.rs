//! Bearer secrets (session tokens, flow ids, invitation and reset links): 256 random
//! bits shown to their holder once and stored only as a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A freshly made or presented secret token.
#[derive(Clone)]
pub struct SecretToken(Zeroizing<String>);

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken([redacted])")
    }
}

/// The stored form of a token: lower-case hex SHA-256. A lookup by hash does not leak
/// the token through timing, and a copy of the database holds no usable token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn from_stored(s: String) -> TokenHash {
        TokenHash(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SecretToken {
    /// 32 bytes from the operating system's generator, base64url (43 characters).
    pub fn generate() -> SecretToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        SecretToken(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// Accepts a token presented by a client if it has the shape of one of ours;
    /// anything else cannot match a stored hash and is refused before any lookup.
    pub fn from_presented(s: &str) -> Option<SecretToken> {
        let ok = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| SecretToken(Zeroizing::new(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality for secrets held as strings (CSRF tokens and the like).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    secrets_equal_bytes(a.as_bytes(), b.as_bytes())
}

/// The same for bytes (a hash output, a MAC).
pub fn secrets_equal_bytes(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = SecretToken::generate();
        let b = SecretToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        assert!(SecretToken::from_presented(a.expose()).is_some());
        assert_eq!(SecretToken::from_presented(a.expose()).map(|t| t.hash()), Some(a.hash()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "short", &"a".repeat(44), &format!("{}!", "a".repeat(42)), &"é".repeat(22)] {
            assert!(SecretToken::from_presented(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        let t = SecretToken(Zeroizing::new("abc".into()));
        assert_eq!(t.hash().as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(format!("{t:?}"), "SecretToken([redacted])");
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
