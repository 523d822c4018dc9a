//! Authenticator apps: time-based one-time passwords (RFC 6238) with the settings
//! every app agrees on — HMAC-SHA-1, 6 digits, 30-second steps — one step of
//! allowance either side, and replay protection by remembering the last step used.

use std::fmt::{self, Write as _};

use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, Totp};
use zeroize::Zeroizing;

use crate::clock::UnixTime;
use crate::email::Email;

/// Digits in a code.
pub const DIGITS: u8 = 6;
/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Steps accepted either side of the current one for clock drift and typing time
/// (RFC 6238 §5.2 recommends at most one).
pub const SKEW_STEPS: i64 = 1;
/// Length of a generated secret: RFC 4226 recommends 160 bits.
pub const SECRET_BYTES: usize = 20;
/// RFC 4226 requires at least 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// Issuer used when the configured name is empty.
const FALLBACK_ISSUER: &str = "clinic-auth";
const MAX_ISSUER_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("An authenticator secret must be at least {MIN_SECRET_BYTES} bytes (128 bits) long.")]
    TooShort,
}

/// The shared secret between us and the member's authenticator app. Wiped from
/// memory when dropped (totp-rs's `zeroize` feature) and never printed.
#[derive(Clone)]
pub struct TotpSecret(Totp);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// 160 random bits straight from the operating system's generator.
    ///
    /// Panics only if the operating system cannot provide randomness, as
    /// `rand::rng()` would; there is no safe way to continue without it.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        OsRng.unwrap_err().fill_bytes(bytes.as_mut());
        TotpSecret(build_totp(bytes.as_ref(), Algorithm::SHA1, DIGITS, STEP_SECS.unsigned_abs()))
    }

    /// A stored secret (after decryption). The vector is wiped once copied.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TotpSecret, TotpError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(TotpError::TooShort);
        }
        Ok(TotpSecret(build_totp(&bytes, Algorithm::SHA1, DIGITS, STEP_SECS.unsigned_abs())))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.secret().as_bytes()
    }

    /// RFC 4648 base32, upper case, without padding: the `secret` of the
    /// `otpauth://` URI and the manual setup key.
    pub fn to_base32(&self) -> String {
        self.0.secret().to_base32()
    }

    /// The setup key in groups of four ("ABCD EFGH …") for people who type it in
    /// because the QR code won't scan. Apps ignore the spaces.
    pub fn grouped(&self) -> String {
        let b32 = Zeroizing::new(self.to_base32());
        let mut out = String::with_capacity(b32.len() + b32.len() / 4);
        for (i, c) in b32.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

/// The one place a [`Totp`] is built, so that the RFC test vectors (other
/// algorithms, 8 digits, 1-second steps) exercise the same path as production.
/// Skew is 0 because [`verify`] walks the window itself. `build_noncompliant`
/// because our parameters are fixed and valid (digits 6..=8, step > 0) and
/// [`TotpSecret`] checks the secret's length; `build` would only add an error
/// path that cannot happen.
pub(crate) fn build_totp(secret: &[u8], algorithm: Algorithm, digits: u8, step_secs: u64) -> Totp {
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_skew(0)
        .with_step_duration(step_secs)
        .with_secret(secret)
        .build_noncompliant()
}

/// The zero-padded code of `totp` at `unix_secs`.
pub(crate) fn code_at_time(totp: &Totp, unix_secs: u64) -> Zeroizing<String> {
    Zeroizing::new(totp.generate(unix_secs).to_string())
}

fn code_for_step(secret: &TotpSecret, step: u64) -> Zeroizing<String> {
    code_at_time(&secret.0, step.saturating_mul(STEP_SECS.unsigned_abs()))
}

/// The time step at `now`: floor(now / 30). A clock before 1970 is broken, not a
/// case to handle: such times give step 0 so the function stays total, and the
/// codes simply won't match the member's app.
pub fn step_at(now: UnixTime) -> i64 {
    now.0.div_euclid(STEP_SECS).max(0)
}

/// The 6-digit code an app shows at `now`.
pub fn code_at(secret: &TotpSecret, now: UnixTime) -> String {
    // step_at is never negative, so the conversion cannot fail.
    code_for_step(secret, u64::try_from(step_at(now)).unwrap_or(0)).to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Enter the 6-digit code from your authenticator app.")]
pub struct TotpCodeError;

/// A code as typed: exactly six ASCII digits. Never printed.
#[derive(Clone)]
pub struct TotpCode(Zeroizing<String>);

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode([redacted])")
    }
}

impl TotpCode {
    /// Apps show "123 456" and people type "123-456" or paste with stray
    /// whitespace, so spaces, other whitespace and dashes are dropped anywhere.
    /// Only ASCII digits count: a full-width "１２３４５６" is refused rather than
    /// guessed at.
    pub fn parse(input: &str) -> Result<TotpCode, TotpCodeError> {
        let want = usize::from(DIGITS);
        let mut digits = Zeroizing::new(String::with_capacity(want));
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            // Stop at the first extra digit so a long paste costs nothing.
            if !c.is_ascii_digit() || digits.len() == want {
                return Err(TotpCodeError);
            }
            digits.push(c);
        }
        if digits.len() != want {
            return Err(TotpCodeError);
        }
        Ok(TotpCode(digits))
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpRejection {
    #[error("That code didn't work. Check the time on your phone and enter the code your authenticator app shows now.")]
    Wrong,
    #[error("That code was already used. Wait for your authenticator app to show a new code, then enter it.")]
    Replayed,
}

/// Checks `code` against the steps current−1, current and current+1 and returns
/// the step it matched; the caller stores it as the new `last_used_step`. A code
/// of a step at or before `last_used_step` is refused: RFC 6238 §5.2 forbids
/// accepting the same code twice, and an older code than one already used is no
/// better.
pub fn verify(
    secret: &TotpSecret,
    code: &TotpCode,
    now: UnixTime,
    last_used_step: Option<i64>,
) -> Result<i64, TotpRejection> {
    let current = step_at(now);
    let mut matched = Choice::from(0);
    let mut matched_step: i64 = 0;
    // Every step in the window is computed and compared; which one matched is
    // recorded with constant-time selects rather than an early return. If two
    // steps match (a 1-in-a-million collision) the later one wins, which keeps
    // replay protection strict.
    for candidate in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
        // Only negative steps (the clamped pre-1970 case) are skipped; that depends
        // on the time, not on the secret.
        let Ok(step) = u64::try_from(candidate) else { continue };
        let expected = code_for_step(secret, step);
        let hit = expected.as_bytes().ct_eq(code.0.as_bytes());
        matched_step.conditional_assign(&candidate, hit);
        matched |= hit;
    }
    if !bool::from(matched) {
        return Err(TotpRejection::Wrong);
    }
    if last_used_step.is_some_and(|last| matched_step <= last) {
        return Err(TotpRejection::Replayed);
    }
    Ok(matched_step)
}

/// The name authenticator apps show above the code ("Riverside Clinic").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issuer(String);

impl Issuer {
    /// Makes any configured name safe for an `otpauth://` label: the Key Uri
    /// Format forbids a colon in the issuer (it separates issuer from account),
    /// apps show control characters badly, and long names get cut off anyway.
    /// Whitespace controls (tab, newline) count as spaces; other controls are dropped.
    pub fn from_name(name: &str) -> Issuer {
        let cleaned: String = name
            .chars()
            .filter_map(|c| match c {
                ':' => Some(' '),
                c if c.is_whitespace() => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect();
        let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        let truncated: String = collapsed.chars().take(MAX_ISSUER_CHARS).collect();
        let trimmed = truncated.trim_end();
        Issuer(if trimmed.is_empty() { FALLBACK_ISSUER.to_owned() } else { trimmed.to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The URI behind the enrollment QR code, in Google's Key Uri Format:
/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
/// The parameters that Google Authenticator ignores are still sent so that every
/// app computes the same codes. Contains the secret: show it, never log it.
pub fn otpauth_uri(issuer: &Issuer, account: &Email, secret: &TotpSecret) -> String {
    let issuer = percent_encode(issuer.as_str());
    let account = percent_encode(account.as_str());
    let secret = Zeroizing::new(secret.to_base32());
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret.as_str()
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, with
/// upper-case hex; a space is `%20`, never `+` (that is form encoding, which
/// some apps would show as a literal plus).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(SEED_SHA1.to_vec()).unwrap()
    }

    fn code(s: &str) -> TotpCode {
        TotpCode::parse(s).unwrap()
    }

    #[test]
    fn rfc6238_appendix_b() {
        // (time, SHA-1, SHA-256, SHA-512), seeds per the erratum.
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        let algorithms =
            [(Algorithm::SHA1, SEED_SHA1), (Algorithm::SHA256, SEED_SHA256), (Algorithm::SHA512, SEED_SHA512)];
        for (time, sha1, sha256, sha512) in table {
            for ((algorithm, seed), want) in algorithms.iter().zip([sha1, sha256, sha512]) {
                let totp = build_totp(seed, *algorithm, 8, 30);
                assert_eq!(code_at_time(&totp, time).as_str(), want, "{algorithm:?} at {time}");
            }
        }
    }

    #[test]
    fn six_digit_code_is_the_last_six_of_the_rfc_value() {
        assert_eq!(code_at(&rfc_secret(), UnixTime(59)), "287082");
        assert_eq!(code_at(&rfc_secret(), UnixTime(1111111109)), "081804");
        assert_eq!(code_at(&rfc_secret(), UnixTime(1234567890)), "005924");
    }

    #[test]
    fn the_20_byte_seed_does_not_give_the_published_sha256_values() {
        let totp = build_totp(SEED_SHA1, Algorithm::SHA256, 8, 30);
        assert_eq!(code_at_time(&totp, 59).as_str(), "32247374");
    }

    #[test]
    fn rfc4226_appendix_d() {
        let table =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        // HOTP(count) is TOTP with a 1-second step at time = count.
        let hotp = build_totp(SEED_SHA1, Algorithm::SHA1, 6, 1);
        for (count, want) in (0u64..).zip(table) {
            assert_eq!(code_at_time(&hotp, count).as_str(), want, "count {count}");
        }
    }

    #[test]
    fn steps() {
        for (now, step) in [(0, 0), (29, 0), (30, 1), (59, 1), (1111111109, 37037036), (-1, 0), (-100, 0)] {
            assert_eq!(step_at(UnixTime(now)), step, "{now}");
        }
        assert!(step_at(UnixTime(i64::MAX)) > 0);
    }

    #[test]
    fn verify_accepts_one_step_either_side_and_no_more() {
        let s = rfc_secret();
        let now = UnixTime(1_000_000_005); // step 33333333
        let current = step_at(now);
        for (offset, want) in [
            (-2, Err(TotpRejection::Wrong)),
            (-1, Ok(current - 1)),
            (0, Ok(current)),
            (1, Ok(current + 1)),
            (2, Err(TotpRejection::Wrong)),
        ] {
            let c = code(&code_at(&s, now.plus_secs(offset * STEP_SECS)));
            assert_eq!(verify(&s, &c, now, None), want, "offset {offset}");
        }
    }

    #[test]
    fn verify_refuses_a_code_twice_and_older_codes() {
        let s = rfc_secret();
        let now = UnixTime(1_000_000_005);
        let current = step_at(now);
        let this = code(&code_at(&s, now));
        let previous = code(&code_at(&s, now.plus_secs(-STEP_SECS)));
        let next = code(&code_at(&s, now.plus_secs(STEP_SECS)));

        let used = verify(&s, &this, now, None).unwrap();
        assert_eq!(used, current);
        for (c, last, want) in [
            (&this, Some(used), Err(TotpRejection::Replayed)),
            (&previous, Some(used), Err(TotpRejection::Replayed)),
            (&this, Some(current + 1), Err(TotpRejection::Replayed)),
            (&next, Some(used), Ok(current + 1)),
            (&this, Some(current - 1), Ok(current)),
            (&this, None, Ok(current)),
        ] {
            assert_eq!(verify(&s, c, now, last), want, "last {last:?}");
        }
        // A wrong code is Wrong even when the window was used: nothing to replay.
        let wrong = code(if this.0.as_str() == "000000" { "111111" } else { "000000" });
        assert_eq!(verify(&s, &wrong, now, Some(used)), Err(TotpRejection::Wrong));
    }

    #[test]
    fn when_two_steps_share_a_code_the_later_one_is_recorded() {
        // Found by search: with the RFC seed, steps 910737 and 910738 both give 911617.
        let s = rfc_secret();
        let now = UnixTime(910_737 * STEP_SECS);
        assert_eq!(code_at(&s, now), "911617");
        assert_eq!(code_at(&s, now.plus_secs(STEP_SECS)), "911617");
        assert_eq!(verify(&s, &code("911617"), now, None), Ok(910_738));
        // Recording the earlier step would let the same code in again within the window.
        assert_eq!(verify(&s, &code("911617"), now, Some(910_738)), Err(TotpRejection::Replayed));
    }

    #[test]
    fn verify_near_the_epoch() {
        let s = rfc_secret();
        assert_eq!(verify(&s, &code("287082"), UnixTime(59), None), Ok(1));
        assert_eq!(verify(&s, &code("755224"), UnixTime(10), None), Ok(0));
        assert_eq!(verify(&s, &code("755224"), UnixTime(-5), None), Ok(0));
    }

    #[test]
    fn code_parsing() {
        for ok in ["123456", "123 456", "123-456", " 123456 ", "1 2-3 4-5 6", "\t123456\n", "000000"] {
            assert!(TotpCode::parse(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(code("123 456").0.as_str(), "123456");
        for bad in
            ["", "   ", "-", "12345", "1234567", "12345a", "abcdef", "１２３４５６", "+12345", "12345.6", "123_456"]
        {
            assert_eq!(TotpCode::parse(bad).err(), Some(TotpCodeError), "{bad:?}");
        }
        assert_eq!(TotpCodeError.to_string(), "Enter the 6-digit code from your authenticator app.");
    }

    #[test]
    fn secrets() {
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(rfc_secret().grouped(), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        assert_eq!(rfc_secret().as_bytes(), SEED_SHA1);
        assert_eq!(TotpSecret::from_bytes(vec![0; 15]).err(), Some(TotpError::TooShort));
        let short = TotpSecret::from_bytes(vec![0; 16]).unwrap();
        assert_eq!(short.to_base32(), "A".repeat(26), "16 bytes: 26 characters, no padding");
        assert_eq!(short.grouped(), "AAAA AAAA AAAA AAAA AAAA AAAA AA");

        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), SECRET_BYTES);
        assert_eq!(a.to_base32().len(), 32);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn secrets_and_codes_do_not_print() {
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret([redacted])");
        assert_eq!(format!("{:?}", code("123456")), "TotpCode([redacted])");
    }

    #[test]
    fn issuer_names_are_cleaned() {
        let long = "x".repeat(100);
        for (input, want) in [
            ("Riverside Clinic", "Riverside Clinic"),
            ("  Riverside   Clinic  ", "Riverside Clinic"),
            ("Riverside: Clinic", "Riverside Clinic"),
            ("A:B::C", "A B C"),
            ("Bad\u{0}Name\u{7f}", "BadName"),
            ("Line\nbreak\tand tab", "Line break and tab"),
            ("Ünïcode Klinik", "Ünïcode Klinik"),
            ("", "clinic-auth"),
            (" : \u{1} ", "clinic-auth"),
            (&long, &long[..64]),
        ] {
            assert_eq!(Issuer::from_name(input).as_str(), want, "{input:?}");
        }
        // Truncation never leaves a trailing space.
        let spaced = format!("{} b", "a".repeat(63));
        assert_eq!(Issuer::from_name(&spaced).as_str(), "a".repeat(63));
    }

    #[test]
    fn otpauth_uris() {
        let account = Email::parse("dr.lee@riverside.test").unwrap();
        let uri = otpauth_uri(&Issuer::from_name("Riverside Clinic"), &account, &rfc_secret());
        assert_eq!(
            uri,
            "otpauth://totp/Riverside%20Clinic:dr.lee%40riverside.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Riverside%20Clinic&algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri(&Issuer::from_name("St. Mary's: Pediatrics & Co+"), &account, &rfc_secret());
        assert_eq!(
            uri,
            "otpauth://totp/St.%20Mary%27s%20Pediatrics%20%26%20Co%2B:dr.lee%40riverside.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=St.%20Mary%27s%20Pediatrics%20%26%20Co%2B&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("a-z_0.9~ é/%"), "a-z_0.9~%20%C3%A9%2F%25");
    }
}
