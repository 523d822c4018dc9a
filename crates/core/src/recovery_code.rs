//! The recovery code: one high-entropy code shown once at setup, used when every
//! other factor is lost, and replaced by a new one each time it is used.

use std::fmt;

use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::token::{hex, secrets_equal};

/// Crockford's base32: no I, L, O (they look like 1 and 0) and no U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 24 symbols of 5 bits: 120 bits, far beyond guessing within any rate limit, and
/// above the 112 bits that let a lookup secret be stored with a plain SHA-256 (ASVS
/// 5.0 6.5.2).
pub const SYMBOLS: usize = 24;
/// Codes issued before codes grew to 24 symbols had 20 (100 bits); they keep working
/// until used, when a 24-symbol one replaces them.
pub const LEGACY_SYMBOLS: usize = 20;
const GROUP: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "That is not a recovery code: it has 24 letters and digits in groups of four, like \
     XXXX-XXXX-XXXX-XXXX-XXXX-XXXX. Check what you typed and try again."
)]
pub struct RecoveryCodeError;

/// A recovery code in its canonical form: 24 upper-case symbols (20 for one issued
/// before), no separators.
/// Never printed, wiped from memory when dropped.
#[derive(Clone)]
pub struct RecoveryCode(Zeroizing<String>);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    /// 24 symbols from the operating system's generator. Each byte's low five bits
    /// pick a symbol; 256 is a multiple of 32, so every symbol is equally likely.
    ///
    /// Panics only if the operating system cannot provide randomness.
    pub fn generate() -> RecoveryCode {
        let mut bytes = Zeroizing::new([0u8; SYMBOLS]);
        OsRng.unwrap_err().fill_bytes(bytes.as_mut());
        let mut code = Zeroizing::new(String::with_capacity(SYMBOLS));
        for b in bytes.iter() {
            // `b & 0x1f` is below 32, so the fallback is never taken.
            code.push(ALPHABET.get(usize::from(b & 0x1f)).map_or('0', |&s| char::from(s)));
        }
        RecoveryCode(code)
    }

    /// Reads a code as a person types it back from paper: any letter case, with or
    /// without the dashes, with spaces, and with the look-alikes Crockford's
    /// alphabet leaves out read as the digits they resemble (O → 0, I and L → 1).
    pub fn parse(input: &str) -> Result<RecoveryCode, RecoveryCodeError> {
        let mut code = Zeroizing::new(String::with_capacity(SYMBOLS));
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let known = u8::try_from(c).is_ok_and(|b| ALPHABET.contains(&b));
            // Stop at the first extra symbol so a long paste costs nothing.
            if !known || code.len() == SYMBOLS {
                return Err(RecoveryCodeError);
            }
            code.push(c);
        }
        if code.len() != SYMBOLS && code.len() != LEGACY_SYMBOLS {
            return Err(RecoveryCodeError);
        }
        Ok(RecoveryCode(code))
    }

    /// The form shown to the member: groups of four joined by dashes (29 characters).
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(SYMBOLS + SYMBOLS / GROUP);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % GROUP == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// The stored form: lower-case hex SHA-256 of the canonical code. 120 random
    /// bits cannot be brute-forced from the hash, so a slow password hash would only
    /// cost time at sign-in.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// Whether this code is the one whose hash was stored; constant time.
    pub fn matches(&self, stored_hash: &str) -> bool {
        secrets_equal(&self.hash(), stored_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_well_formed_and_differ() {
        let a = RecoveryCode::generate();
        let b = RecoveryCode::generate();
        assert_ne!(a.0.as_str(), b.0.as_str());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.0.len(), SYMBOLS);
        assert!(a.0.bytes().all(|c| ALPHABET.contains(&c)));
        let shown = a.display();
        assert_eq!(shown.len(), 29);
        assert_eq!(shown.matches('-').count(), 5);
    }

    #[test]
    fn codes_issued_before_with_twenty_symbols_still_parse() {
        let legacy = RecoveryCode::parse("7k2m-q9xd-0123-4567-89ab").unwrap();
        assert_eq!(legacy.0.as_str(), "7K2MQ9XD0123456789AB");
        assert_eq!(legacy.display(), "7K2M-Q9XD-0123-4567-89AB");
        assert_eq!(legacy.hash(), hex(&Sha256::digest(b"7K2MQ9XD0123456789AB")));
    }

    #[test]
    fn generated_codes_parse_back() {
        for _ in 0..50 {
            let code = RecoveryCode::generate();
            let shown = code.display();
            let back = RecoveryCode::parse(&shown).unwrap();
            assert_eq!(back.hash(), code.hash());
            assert!(back.matches(&code.hash()));
            assert_eq!(back.display(), shown);
            let sloppy = shown.to_lowercase().replace('-', " ");
            assert!(RecoveryCode::parse(&sloppy).unwrap().matches(&code.hash()));
        }
    }

    #[test]
    fn parsing_is_forgiving_about_form() {
        let canonical = "7K2MQ9XD0123456789ABCDEF";
        for input in [
            "7K2M-Q9XD-0123-4567-89AB-CDEF",
            "7k2m-q9xd-0123-4567-89ab-cdef",
            "7K2MQ9XD0123456789ABCDEF",
            " 7K2M Q9XD 0123 4567 89AB CDEF ",
            "7K2M--Q9XD-0123-4567-89AB-CDEF-",
            "7K2M-Q9XD-O123-4567-89AB-CDEF", // O for 0
            "7K2M-Q9XD-o123-4567-89AB-CDEF",
        ] {
            assert_eq!(RecoveryCode::parse(input).map(|c| c.0.to_string()), Ok(canonical.to_owned()), "{input:?}");
        }
    }

    #[test]
    fn look_alikes_map_to_digits() {
        let ones = RecoveryCode::parse("IiLl-1111-1111-1111-1111-1111").unwrap();
        assert_eq!(ones.0.as_str(), "1".repeat(24));
        let zeros = RecoveryCode::parse("OoOo-0000-0000-0000-0000-0000").unwrap();
        assert_eq!(zeros.0.as_str(), "0".repeat(24));
    }

    #[test]
    fn wrong_lengths_and_symbols_are_rejected() {
        for bad in [
            "",
            "----",
            "7K2M-Q9XD-0123-4567-89A",        // 19
            "7K2M-Q9XD-0123-4567-89ABC",      // 21
            "7K2M-Q9XD-0123-4567-89AB-CDE",   // 23
            "7K2M-Q9XD-0123-4567-89AB-CDEF0", // 25
            "7K2M-Q9XD-0123-4567-89AB-CDEU",  // U is not in the alphabet
            "7K2M-Q9XD-0123-4567-89AB-CDE!",
            "7K2M_Q9XD_0123_4567_89AB_CDEF",
            "7K2M-Q9XD-0123-4567-89AB-CDEÉ",
            "７K2M-Q9XD-0123-4567-89AB-CDEF", // full-width digit
        ] {
            assert_eq!(RecoveryCode::parse(bad).err(), Some(RecoveryCodeError), "{bad:?}");
        }
        // It says what was wrong, not the page's intro sentence again.
        assert!(RecoveryCodeError.to_string().starts_with("That is not a recovery code"));
    }

    #[test]
    fn hash_and_match() {
        let code = RecoveryCode::parse("0000-0000-0000-0000-0000-0000").unwrap();
        let want = hex(&Sha256::digest(b"000000000000000000000000"));
        assert_eq!(code.hash(), want);
        assert_eq!(code.hash().len(), 64);
        assert!(code.matches(&want));
        assert!(!code.matches(&want.to_uppercase()));
        assert!(!code.matches(&RecoveryCode::generate().hash()));
        assert!(!code.matches(""));
    }

    #[test]
    fn codes_do_not_print() {
        assert_eq!(format!("{:?}", RecoveryCode::generate()), "RecoveryCode([redacted])");
    }
}
