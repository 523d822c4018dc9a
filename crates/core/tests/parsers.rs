//! Property tests for every parser in `core` that reads what a person or a client
//! typed or sent: it never panics on arbitrary text (any Unicode, up to 4 KiB), it
//! accepts every valid value and gives it back unchanged, its normalization is
//! idempotent, and it refuses the invalid classes its module's unit tests name.
//! Also the `otpauth://` URI (it parses back to what went in) and the audit chain's
//! encoding (no two events hash alike; a hash verifies only with its key and fields).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::str::FromStr;

use clinic_auth_core::account::ParseEnumError;
use clinic_auth_core::audit::{ChainBreak, ChainKeys, ChainedFields, GENESIS, StoredLink, verify_chain};
use clinic_auth_core::branding::{
    AccentColor, BrandingError, DisplayName, LOGO_MAX_SIDE, LogoError, LogoFormat, LogoImage, relative_luminance,
};
use clinic_auth_core::ids::IdError;
use clinic_auth_core::one_time_code::OneTimeCodeError;
use clinic_auth_core::passkey::{PasskeyName, PasskeyNameError, device_hint, parse_device_hints, remember_device_hint};
use clinic_auth_core::password::{MAX_LENGTH, PasswordError};
use clinic_auth_core::permission::{IdentityNote, IdentityNoteError};
use clinic_auth_core::phone::PhoneError;
use clinic_auth_core::totp::{Issuer, code_at, otpauth_uri, verify};
use clinic_auth_core::user_agent::{Device, MAX_READ_BYTES, device_name};
use clinic_auth_core::{
    AccountId, AccountKind, AccountStatus, Email, FactorAnswer, FactorKind, MemberOverride, MethodSet, MfaMode,
    NewPassword, OneTimeCode, OrgId, OrgKind, Password, PasswordPolicy, Realm, RecoveryCode, Role, SecretToken,
    TotpCode, TotpSecret, UnixTime, UsPhone,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------
// Shared strategies

/// Any text up to 4 KiB: 0 to 1024 Unicode scalar values of up to 4 bytes each,
/// control characters, NUL and unassigned code points included.
fn any_text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..1024).prop_map(String::from_iter)
}

/// Text over a small alphabet (a parser's own symbols, its separators and near
/// misses), so that random inputs often land on either side of the accept/reject line.
fn text_from(alphabet: &'static [char], max_len: usize) -> impl Strategy<Value = String> {
    vec(select(alphabet), 0..=max_len).prop_map(String::from_iter)
}

/// What people type between the symbols of a code.
const SEPARATORS: &[&str] = &["", "", "", "", " ", "-", "--", "\t", "\n", "\u{a0}", "\u{3000}", " - "];

/// `symbols` with `seps[i]` before the i-th symbol and the last separator at the end.
fn interleave(symbols: &str, seps: &[&str]) -> String {
    let mut out = String::new();
    for (i, c) in symbols.chars().enumerate() {
        out.push_str(seps.get(i).copied().unwrap_or(""));
        out.push(c);
    }
    out.push_str(seps.get(symbols.chars().count()).copied().unwrap_or(""));
    out
}

/// The characters a code parser keeps: everything but dashes and whitespace.
fn kept(s: &str) -> String {
    s.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect()
}

fn six_ascii_digits(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Five to seven digits with separators between them, now and then with a stray symbol:
/// inputs on both sides of the six-digit line.
fn code_like() -> impl Strategy<Value = String> {
    ("[0-9]{5,7}", vec(select(SEPARATORS), 8), prop::option::of((0usize..7, select(DIGIT_CODE_ALPHABET)))).prop_map(
        |(digits, seps, stray)| {
            let digits: String = match stray {
                Some((at, c)) => digits.chars().enumerate().map(|(i, d)| if i == at { c } else { d }).collect(),
                None => digits,
            };
            interleave(&digits, &seps)
        },
    )
}

const DIGIT_CODE_ALPHABET: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '7', ' ', '-', '\t', '\n', '\u{a0}', '\u{3000}', 'a', 'O',
    '+', '.', '_', '\u{ff11}', '\u{663}', '\u{0}',
];

// ---------------------------------------------------------------------------
// TOTP codes (totp.rs)

proptest! {
    #[test]
    fn totp_code_parse_never_panics_and_accepts_exactly_six_ascii_digits_between_separators(
        s in prop_oneof![any_text(), text_from(DIGIT_CODE_ALPHABET, 16), code_like()],
    ) {
        prop_assert_eq!(TotpCode::parse(&s).is_ok(), six_ascii_digits(&kept(&s)), "{:?}", s);
    }

    #[test]
    fn totp_code_typed_with_separators_verifies_like_the_code_the_app_shows(
        secret in vec(any::<u8>(), 16..64),
        now in 0i64..(1 << 40),
        seps in vec(select(SEPARATORS), 7),
    ) {
        let secret = TotpSecret::from_bytes(secret).unwrap();
        let now = UnixTime(now);
        let shown = code_at(&secret, now);
        prop_assert!(six_ascii_digits(&shown), "{:?}", shown);
        let typed = interleave(&shown, &seps);
        let plain = verify(&secret, &TotpCode::parse(&shown).unwrap(), now, None);
        prop_assert!(plain.is_ok());
        prop_assert_eq!(verify(&secret, &TotpCode::parse(&typed).unwrap(), now, None), plain, "{:?}", typed);
    }

    #[test]
    fn totp_and_one_time_codes_of_the_wrong_length_or_with_a_non_digit_are_rejected(
        digits in "[0-9]{0,12}",
        seps in vec(select(SEPARATORS), 13),
        intruder in prop_oneof![
            select(vec!['a', 'O', '+', '_', '.', '\u{ff11}', '\u{663}']),
            any::<char>(),
        ],
        at in 0usize..6,
    ) {
        // Wrong number of digits.
        if digits.len() != 6 {
            let typed = interleave(&digits, &seps);
            prop_assert!(TotpCode::parse(&typed).is_err(), "{:?}", typed);
            prop_assert_eq!(OneTimeCode::parse(&typed).err(), Some(OneTimeCodeError), "{:?}", typed);
        }
        // Six symbols, one of which is not an ASCII digit (nor a separator).
        prop_assume!(!intruder.is_ascii_digit() && intruder != '-' && !intruder.is_whitespace());
        let six: String = format!("{digits:0<6}").chars().take(6).enumerate()
            .map(|(i, c)| if i == at { intruder } else { c })
            .collect();
        let typed = interleave(&six, &seps);
        prop_assert!(TotpCode::parse(&typed).is_err(), "{:?}", typed);
        prop_assert!(OneTimeCode::parse(&typed).is_err(), "{:?}", typed);
    }
}

// ---------------------------------------------------------------------------
// One-time codes by email and text (one_time_code.rs)

proptest! {
    #[test]
    fn one_time_code_parse_never_panics_keeps_just_the_six_digits_and_is_idempotent(
        s in prop_oneof![any_text(), text_from(DIGIT_CODE_ALPHABET, 16), code_like()],
    ) {
        let want = kept(&s);
        match OneTimeCode::parse(&s) {
            Ok(code) => {
                prop_assert!(six_ascii_digits(&want), "accepted {:?}", s);
                prop_assert_eq!(code.expose(), want.as_str());
                let again = OneTimeCode::parse(code.expose()).unwrap();
                prop_assert_eq!(again.expose(), code.expose());
            }
            Err(OneTimeCodeError) => prop_assert!(!six_ascii_digits(&want), "refused {:?}", s),
        }
    }

    #[test]
    fn one_time_code_round_trips_through_what_the_member_types(seps in vec(select(SEPARATORS), 7)) {
        let sent = OneTimeCode::generate();
        let typed = interleave(sent.expose(), &seps);
        let back = OneTimeCode::parse(&typed).unwrap();
        prop_assert_eq!(back.expose(), sent.expose(), "{:?}", typed);
    }
}

// ---------------------------------------------------------------------------
// Recovery codes (recovery_code.rs)

const CROCKFORD: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'M', 'N', 'P',
    'Q', 'R', 'S', 'T', 'V', 'W', 'X', 'Y', 'Z',
];

const RECOVERY_ALPHABET: &[char] = &[
    '0', '1', '7', 'A', 'K', 'Z', 'a', 'k', 'z', 'O', 'o', 'I', 'i', 'L', 'l', 'U', 'u', '-', ' ', '\t', '_', '!',
    '\u{c9}', '\u{ff17}', '\u{131}', '\u{212a}',
];

/// What the parser makes of one kept character: upper case, look-alikes as digits.
fn recovery_symbol(c: char) -> Option<char> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    CROCKFORD.contains(&c).then_some(c)
}

fn grouped(canonical: &str) -> String {
    let chars: Vec<char> = canonical.chars().collect();
    chars.chunks(4).map(String::from_iter).collect::<Vec<_>>().join("-")
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// How a person may write one symbol back from paper.
fn sloppy(c: char, choice: u8) -> char {
    match (c, choice % 4) {
        ('0', 1) => 'O',
        ('0', 2) => 'o',
        ('1', 1) => 'I',
        ('1', 2) => 'l',
        ('1', 3) => 'L',
        (c, 3) | (c, 1) => c.to_ascii_lowercase(),
        (c, _) => c,
    }
}

/// 19 to 25 symbols as a person might write them back (a code issued before codes
/// grew to 24 symbols had 20), now and then with a stray one.
fn recovery_like() -> impl Strategy<Value = String> {
    (
        vec((select(CROCKFORD), any::<u8>()), 19..=25),
        vec(select(SEPARATORS), 26),
        prop::option::of((0usize..25, select(RECOVERY_ALPHABET))),
    )
        .prop_map(|(symbols, seps, stray)| {
            let written: String = symbols
                .iter()
                .enumerate()
                .map(|(i, &(c, k))| match stray {
                    Some((at, s)) if at == i => s,
                    _ => sloppy(c, k),
                })
                .collect();
            interleave(&written, &seps)
        })
}

proptest! {
    #[test]
    fn recovery_code_parse_never_panics_follows_the_typing_rules_and_is_idempotent(
        s in prop_oneof![any_text(), text_from(RECOVERY_ALPHABET, 28), recovery_like()],
    ) {
        let symbols: Option<String> = kept(&s).chars().map(recovery_symbol).collect();
        let want = symbols.filter(|c| c.len() == 24 || c.len() == 20);
        match RecoveryCode::parse(&s) {
            Ok(code) => {
                let want = want.unwrap_or_default();
                prop_assert_eq!(code.display(), grouped(&want), "{:?}", s);
                prop_assert_eq!(code.hash(), sha256_hex(&want));
                let again = RecoveryCode::parse(&code.display()).unwrap();
                prop_assert_eq!(again.display(), code.display());
            }
            Err(_) => prop_assert!(want.is_none(), "refused {:?}", s),
        }
    }

    #[test]
    fn recovery_code_round_trips_through_its_display_and_sloppy_typing(
        canonical in prop_oneof![vec(select(CROCKFORD), 24), vec(select(CROCKFORD), 20)].prop_map(String::from_iter),
        choices in vec(any::<u8>(), 24),
        seps in vec(select(SEPARATORS), 25),
    ) {
        let code = RecoveryCode::parse(&canonical).unwrap();
        let shown = code.display();
        prop_assert_eq!(shown.len(), canonical.len() + canonical.len() / 4 - 1);
        prop_assert_eq!(&shown, &grouped(&canonical));
        prop_assert_eq!(RecoveryCode::parse(&shown).unwrap().display(), shown.clone());
        // The stored hash is over the canonical symbols, not the display form.
        prop_assert_eq!(code.hash(), sha256_hex(&canonical));

        let written: String = canonical.chars().zip(&choices).map(|(c, &k)| sloppy(c, k)).collect();
        let typed = interleave(&written, &seps);
        let back = RecoveryCode::parse(&typed).unwrap();
        prop_assert!(back.matches(&code.hash()), "{:?}", typed);
        prop_assert_eq!(back.display(), shown);
    }

    #[test]
    fn recovery_codes_of_the_wrong_length_or_with_a_foreign_symbol_are_rejected(
        canonical in vec(select(CROCKFORD), 0..30).prop_map(String::from_iter),
        foreign in prop_oneof![
            select(vec!['U', 'u', '_', '!', '\u{c9}', '\u{ff17}', '\u{131}']),
            any::<char>(),
        ],
        at in 0usize..24,
    ) {
        if canonical.len() != 24 && canonical.len() != 20 {
            prop_assert!(RecoveryCode::parse(&canonical).is_err(), "{:?}", canonical);
            prop_assert!(RecoveryCode::parse(&grouped(&canonical)).is_err(), "{:?}", canonical);
        }
        prop_assume!(recovery_symbol(foreign).is_none() && foreign != '-' && !foreign.is_whitespace());
        let full: String = format!("{canonical:0<24}").chars().take(24).enumerate()
            .map(|(i, c)| if i == at { foreign } else { c })
            .collect();
        prop_assert!(RecoveryCode::parse(&full).is_err(), "{:?}", full);
    }
}

// ---------------------------------------------------------------------------
// US phone numbers (phone.rs)

/// US area codes (all valid for fixed-line or mobile numbers).
const US_AREA_CODES: &[&str] =
    &["201", "202", "212", "213", "305", "312", "404", "415", "503", "512", "602", "617", "646", "702", "713", "917"];
/// Toll-free and premium-rate: they cannot receive texts.
const NOT_MOBILE_AREA_CODES: &[&str] = &["800", "833", "844", "855", "866", "877", "888", "900"];
/// +1 numbers outside the US: Canada and the Caribbean.
const OTHER_NANP_AREA_CODES: &[&str] = &["416", "604", "514", "403", "613", "902", "876", "242"];

const PHONE_ALPHABET: &[char] =
    &['0', '1', '2', '5', '8', '9', '1', '2', ' ', '+', '-', '(', ')', '.', 'x', '/', '\u{ff11}', '\u{a0}'];

/// The ways people write a 10-digit US number.
fn us_shapes(area: &str, exchange: u32, line: u32) -> Vec<String> {
    let (a, e, l) = (area, exchange, format!("{line:04}"));
    vec![
        format!("({a}) {e}-{l}"),
        format!("{a}-{e}-{l}"),
        format!("{a}.{e}.{l}"),
        format!("{a}{e}{l}"),
        format!("+1 {a} {e} {l}"),
        format!("+1 ({a}) {e}-{l}"),
        format!("1 ({a}) {e}-{l}"),
        format!("1-{a}-{e}-{l}"),
        format!(" +1{a}{e}{l} "),
    ]
}

/// Digits, spaces and dashes in the shape of a phone number, of any length.
fn phone_like() -> impl Strategy<Value = String> {
    (prop_oneof![Just(""), Just("+"), Just("+1 "), Just("1 "), Just("+44 ")], "[0-9 ().-]{0,24}")
        .prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
}

/// A number in one of the usual shapes, with a US, toll-free, foreign or random area
/// code: accepted often enough for the properties of accepted numbers to be exercised.
fn phone_shaped() -> impl Strategy<Value = String> {
    let area = prop_oneof![
        3 => select(US_AREA_CODES).prop_map(str::to_owned),
        1 => select(NOT_MOBILE_AREA_CODES).prop_map(str::to_owned),
        1 => select(OTHER_NANP_AREA_CODES).prop_map(str::to_owned),
        1 => "[0-9]{3}",
    ];
    (area, 0u32..1000, 0u32..10_000, any::<prop::sample::Index>()).prop_map(|(area, exchange, line, shape)| {
        let shapes = us_shapes(&area, exchange, line);
        shapes[shape.index(shapes.len())].clone()
    })
}

proptest! {
    #[test]
    fn us_phone_parse_never_panics_and_its_e164_form_parses_back_to_itself(
        s in prop_oneof![any_text(), text_from(PHONE_ALPHABET, 24), phone_like(), phone_shaped()],
    ) {
        let trimmed = s.trim();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        let shaped = trimmed.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        match UsPhone::parse(&s) {
            Ok(phone) => {
                let e164 = phone.e164();
                prop_assert!(e164.len() == 12 && e164.starts_with("+1"), "{:?} -> {:?}", s, e164);
                prop_assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()), "{:?}", e164);
                prop_assert_eq!(phone.to_string(), e164);
                prop_assert_eq!(UsPhone::parse(e164), Ok(phone.clone()));
                prop_assert_eq!(UsPhone::from_e164(e164), Ok(phone.clone()));
                prop_assert!(phone.masked().ends_with(&e164[8..]));
                prop_assert!(shaped && (10..=11).contains(&digits), "accepted {:?}", s);
            }
            Err(e) => {
                if !shaped || !(10..=15).contains(&digits) {
                    prop_assert_eq!(e, PhoneError::Malformed, "{:?}", s);
                }
            }
        }
    }

    #[test]
    fn us_numbers_in_every_usual_shape_parse_to_the_same_e164(
        area in select(US_AREA_CODES),
        exchange in 200u32..1000,
        line in 0u32..10_000,
    ) {
        let want = format!("+1{area}{exchange}{line:04}");
        for shape in us_shapes(area, exchange, line) {
            prop_assert_eq!(UsPhone::parse(&shape).map(|p| p.e164().to_owned()), Ok(want.clone()), "{:?}", shape);
        }
    }

    #[test]
    fn toll_free_and_premium_numbers_are_refused_as_not_mobile(
        area in select(NOT_MOBILE_AREA_CODES),
        exchange in 200u32..1000,
        line in 0u32..10_000,
    ) {
        for shape in us_shapes(area, exchange, line) {
            prop_assert_eq!(UsPhone::parse(&shape), Err(PhoneError::NotMobile), "{:?}", shape);
        }
    }

    #[test]
    fn numbers_outside_the_us_are_refused_as_not_us(
        area in select(OTHER_NANP_AREA_CODES),
        exchange in 200u32..1000,
        line in 0u32..10_000,
        country in "[2-9][0-9]{0,2}",
        national in "[0-9]{9,11}",
    ) {
        for shape in us_shapes(area, exchange, line) {
            prop_assert_eq!(UsPhone::parse(&shape), Err(PhoneError::NotUs), "{:?}", shape);
        }
        let foreign = format!("+{country} {national}");
        prop_assert_eq!(UsPhone::parse(&foreign), Err(PhoneError::NotUs), "{:?}", foreign);
    }

    #[test]
    fn phone_numbers_with_too_few_digits_letters_or_a_bad_area_code_are_rejected(
        short in "[0-9]{0,9}",
        area in select(US_AREA_CODES),
        letter in "[a-zA-Z#*/]",
        at in 0usize..10,
        bad_area in "[01][0-9]{2}",
    ) {
        prop_assert_eq!(UsPhone::parse(&short), Err(PhoneError::Malformed), "{:?}", short);
        let mut with_letter: Vec<char> = format!("{area}5550123").chars().collect();
        with_letter.insert(at, letter.chars().next().unwrap());
        let with_letter = String::from_iter(with_letter);
        prop_assert_eq!(UsPhone::parse(&with_letter), Err(PhoneError::Malformed), "{:?}", with_letter);
        let long = format!("{area}5550123{short}999999");
        prop_assert_eq!(UsPhone::parse(&long), Err(PhoneError::Malformed), "{:?}", long);
        let bad = format!("({bad_area}) 555-0123");
        prop_assert!(UsPhone::parse(&bad).is_err(), "{:?}", bad);
    }
}

// ---------------------------------------------------------------------------
// Email addresses (email.rs)

const EMAIL_ALPHABET: &[char] = &[
    'a', 'b', 'Z', '0', '@', '@', '.', '.', '-', '_', '+', ' ', '\t', '\n', '"', '<', ':', ',', '\u{e9}', '\u{130}',
    '\u{3a3}', '\u{0}', '\u{200b}',
];

fn valid_local() -> impl Strategy<Value = String> {
    vec("[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", 1..5)
        .prop_map(|atoms| atoms.join("."))
        .prop_filter("64 octets", |l| l.len() <= 64)
}

fn valid_domain() -> impl Strategy<Value = String> {
    vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 2..5).prop_map(|labels| labels.join("."))
}

/// Addresses the parser must accept, already in normal form.
fn valid_email() -> impl Strategy<Value = String> {
    (valid_local(), valid_domain()).prop_map(|(l, d)| format!("{l}@{d}"))
}

/// A valid address as typed: letters in any case, whitespace around it.
fn messy_email() -> impl Strategy<Value = (String, String)> {
    (
        valid_email(),
        vec(any::<bool>(), 0..200),
        select(vec!["", " ", "\t", "\n ", "\u{3000}"]),
        select(vec!["", " ", "\r\n"]),
    )
        .prop_map(|(email, upper, before, after)| {
            let mixed: String = email
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            (email, format!("{before}{mixed}{after}"))
        })
}

proptest! {
    #[test]
    fn email_parse_never_panics_and_normalization_is_idempotent(
        s in prop_oneof![any_text(), text_from(EMAIL_ALPHABET, 30), messy_email().prop_map(|(_, typed)| typed)],
    ) {
        if let Ok(email) = Email::parse(&s) {
            let e = email.as_str();
            prop_assert_eq!(Email::parse(e), Ok(email.clone()), "{:?}", s);
            prop_assert_eq!(email.to_string(), e);
            prop_assert_eq!(e.to_lowercase(), e);
            prop_assert!(e.len() <= 254);
            prop_assert_eq!(e.matches('@').count(), 1, "{:?}", e);
            // No colon: the otpauth label uses it to separate issuer and account.
            prop_assert!(!e.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()), "{:?}", e);
        }
    }

    #[test]
    fn valid_emails_in_any_letter_case_with_padding_parse_to_the_lower_case_address(
        (email, typed) in messy_email(),
    ) {
        prop_assert_eq!(Email::parse(&typed).map(|e| e.as_str().to_owned()), Ok(email), "{:?}", typed);
    }

    #[test]
    fn emails_breaking_a_syntax_rule_are_rejected(
        (local, domain) in (valid_local(), valid_domain()),
        defect in 0usize..12,
        forbidden in select(vec!['<', '>', '(', ')', '[', ']', '\\', ',', ';', ':', '"']),
    ) {
        let bad = match defect {
            0 => format!("{local}{domain}"),                 // no @
            1 => format!("{local}@{local}@{domain}"),        // two @
            2 => format!("{local} x@{domain}"),              // whitespace inside
            3 => format!("{local}..x@{domain}"),             // consecutive dots
            4 => format!(".{local}@{domain}"),               // leading dot
            5 => format!("{local}.@{domain}"),               // trailing dot
            6 => format!("{local}@-{domain}"),               // label starts with a hyphen
            7 => format!("{local}@{domain}-"),               // label ends with a hyphen
            8 => format!("{local}@{domain}.x_y"),            // underscore in the domain
            9 => format!("{local}@{}", domain.replace('.', "")), // a single label
            10 => format!("{}@{domain}", "a".repeat(65)),   // local part over 64 octets
            _ => format!("{local}{forbidden}@{domain}"),     // a character the local part may not hold
        };
        prop_assert_eq!(Email::parse(&bad), Err(clinic_auth_core::email::EmailError), "{:?}", bad);
        let long = format!("{local}@{}.{domain}", vec!["b".repeat(63); 4].join("."));
        prop_assert!(long.len() > 254);
        prop_assert!(Email::parse(&long).is_err(), "{:?}", long);
    }
}

// ---------------------------------------------------------------------------
// Organization and account ids (ids.rs)

const ORG_ALPHABET: &[char] = &['a', 'z', 'q', '0', '9', '-', '-', 'A', '_', ' ', '.', '\u{fc}'];

fn org_id_rule(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn valid_slug() -> impl Strategy<Value = String> {
    vec("[a-z0-9]{1,9}", 1..8)
        .prop_map(|parts| parts.join("-"))
        .prop_filter("3 to 63 characters", |s| (3..=63).contains(&s.len()))
}

/// A valid id with one defect: upper case, a foreign character, a double, leading or
/// trailing hyphen, one character too many or too few.
fn org_id_with_defect() -> impl Strategy<Value = String> {
    (valid_slug(), 0usize..8, any::<prop::sample::Index>()).prop_map(|(slug, defect, at)| {
        let i = at.index(slug.len() + 1);
        match defect {
            0 => slug.to_uppercase() + "X",
            1 => format!("{}_{}", &slug[..i], &slug[i..]),
            2 => format!("{}--{}", &slug[..i], &slug[i..]),
            3 => format!("-{slug}"),
            4 => format!("{slug}-"),
            5 => format!("{slug}{}", "x".repeat(64 - slug.len().min(64))),
            6 => slug.chars().take(2).collect(),
            _ => format!("{} {}", &slug[..i], &slug[i..]),
        }
    })
}

proptest! {
    #[test]
    fn org_id_parse_never_panics_and_accepts_exactly_lowercase_slugs(
        s in prop_oneof![any_text(), text_from(ORG_ALPHABET, 70), valid_slug(), org_id_with_defect()],
    ) {
        match OrgId::parse(&s) {
            Ok(id) => {
                prop_assert!(org_id_rule(&s), "accepted {:?}", s);
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(id.to_string(), s.clone());
                prop_assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
            }
            Err(e) => {
                prop_assert_eq!(e, IdError::BadOrgId);
                prop_assert!(!org_id_rule(&s), "refused {:?}", s);
            }
        }
    }

    #[test]
    fn org_ids_with_a_defect_are_rejected(bad in org_id_with_defect()) {
        prop_assert_eq!(OrgId::parse(&bad), Err(IdError::BadOrgId), "{:?}", bad);
    }

    #[test]
    fn org_id_derived_from_any_name_or_with_any_suffix_is_a_valid_id(
        name in prop_oneof![any_text(), "[A-Za-z0-9 ,.&'-]{0,120}", valid_slug()],
        n in prop_oneof![2u32..100, any::<u32>()],
    ) {
        let id = OrgId::from_name(&name);
        prop_assert_eq!(OrgId::parse(id.as_str()), Ok(id.clone()), "{:?}", name);
        let suffixed = id.with_suffix(n);
        prop_assert_eq!(OrgId::parse(suffixed.as_str()), Ok(suffixed.clone()), "{:?} + {}", id, n);
        prop_assert!(suffixed.as_str().ends_with(&format!("-{n}")), "{:?}", suffixed);
        // A slug that is already an id, and short enough not to be cut, is kept as is.
        if org_id_rule(&name) && name.len() <= 55 {
            prop_assert_eq!(id.as_str(), name.as_str());
        }
    }

    #[test]
    fn account_id_round_trips_through_its_display_and_every_uuid_form(bytes in any::<[u8; 16]>()) {
        let u = uuid::Uuid::from_bytes(bytes);
        let id = AccountId::parse(&u.hyphenated().to_string()).unwrap();
        let shown = id.to_string();
        prop_assert_eq!(&shown, &u.hyphenated().to_string());
        prop_assert_eq!(AccountId::parse(&shown), Ok(id));
        for form in [
            shown.to_uppercase(),
            u.simple().to_string(),
            u.braced().to_string(),
            u.urn().to_string(),
        ] {
            prop_assert_eq!(AccountId::parse(&form), Ok(id), "{:?}", form);
        }
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<AccountId>(&json).unwrap(), id);
    }

    #[test]
    fn account_id_parse_never_panics_and_normalizes_idempotently(
        s in prop_oneof![
            any_text(),
            "[0-9a-fA-F{}:-]{30,45}",
            (any::<[u8; 16]>(), 0u8..5).prop_map(|(b, form)| {
                let u = uuid::Uuid::from_bytes(b);
                match form {
                    0 => u.hyphenated().to_string(),
                    1 => u.hyphenated().to_string().to_uppercase(),
                    2 => u.simple().to_string(),
                    3 => u.braced().to_string(),
                    _ => u.urn().to_string(),
                }
            }),
        ],
    ) {
        match AccountId::parse(&s) {
            Ok(id) => {
                let shown = id.to_string();
                prop_assert_eq!(shown.len(), 36);
                prop_assert_eq!(shown.to_lowercase(), shown.clone());
                prop_assert_eq!(AccountId::parse(&shown), Ok(id));
            }
            Err(e) => prop_assert_eq!(e, IdError::BadAccountId),
        }
    }
}

// ---------------------------------------------------------------------------
// Enums read from forms, configuration and the store (account.rs, policy.rs)

const ENUM_NAMES: &[&str] = &[
    "clinic",
    "solo",
    "owner",
    "admin",
    "provider",
    "staff",
    "member",
    "patient",
    "platform_admin",
    "active",
    "deactivated",
    "off",
    "optional",
    "required",
    "clinic_default",
    "not_required",
    "authenticator",
    "email",
    "sms",
    "passkey",
    "recovery_code",
];

/// Names as given, in other letter cases, padded or glued to something.
fn enum_name_like() -> impl Strategy<Value = String> {
    (select(ENUM_NAMES), 0u8..6, "[a-z _-]{0,3}").prop_map(|(n, how, extra)| match how {
        0 | 1 => n.to_owned(),
        2 => n.to_uppercase(),
        3 => format!(" {n}"),
        4 => format!("{n}{extra}"),
        _ => format!("{extra}{n}"),
    })
}

/// `from_str` takes exactly the names `Display` and serde write, in lower case, and
/// nothing else.
fn check_enum<T>(all: &[T], s: &str) -> Result<(), TestCaseError>
where
    T: FromStr<Err = ParseEnumError>
        + Display
        + Debug
        + PartialEq
        + Copy
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    for v in all {
        let name = v.to_string();
        prop_assert_eq!(name.parse::<T>(), Ok(*v));
        prop_assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
        prop_assert_eq!(serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(), *v);
    }
    match s.parse::<T>() {
        Ok(v) => prop_assert_eq!(v.to_string(), s),
        Err(e) => {
            prop_assert!(all.iter().all(|v| v.to_string() != s), "refused {:?}", s);
            for v in all {
                prop_assert!(e.allowed.split(' ').any(|a| a == v.to_string()), "{} lists {}", e.allowed, v);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn enum_from_str_never_panics_and_accepts_exactly_the_names_it_prints(
        s in prop_oneof![any_text(), enum_name_like()],
    ) {
        check_enum(OrgKind::ALL, &s)?;
        check_enum(Role::ALL, &s)?;
        check_enum(AccountKind::ALL, &s)?;
        check_enum(Realm::ALL, &s)?;
        check_enum(AccountStatus::ALL, &s)?;
        check_enum(MfaMode::ALL, &s)?;
        check_enum(MemberOverride::ALL, &s)?;
        check_enum(FactorKind::ALL, &s)?;
    }
}

// ---------------------------------------------------------------------------
// An organization's allowed methods (policy.rs)

const ENROLLABLE: [FactorKind; 4] =
    [FactorKind::Authenticator, FactorKind::Email, FactorKind::Sms, FactorKind::Passkey];

/// A comma list of method names in any order and letter case, with repeats, spaces
/// and empty items.
fn method_list() -> impl Strategy<Value = (Vec<FactorKind>, String)> {
    vec((select(ENROLLABLE.to_vec()), any::<bool>(), select(vec!["", " ", "  ", "\t"]), any::<bool>()), 0..8).prop_map(
        |items| {
            let kinds = items.iter().map(|(k, ..)| *k).collect();
            let text = items
                .iter()
                .map(|(k, upper, pad, empty_after)| {
                    let name = if *upper { k.as_str().to_uppercase() } else { k.as_str().to_owned() };
                    format!("{pad}{name}{pad}{}", if *empty_after { ", " } else { "" })
                })
                .collect::<Vec<_>>()
                .join(",");
            (kinds, text)
        },
    )
}

const METHOD_ALPHABET: &[char] =
    &['s', 'm', 'S', 'e', 'a', 'i', 'l', ',', ',', ' ', '_', 'r', 'c', 'o', 'v', 'y', 'd', '\u{17f}', '\u{212a}'];

proptest! {
    #[test]
    fn method_set_round_trips_any_list_through_its_canonical_form((kinds, text) in method_list()) {
        let set = MethodSet::parse(&text).unwrap();
        let chosen: BTreeSet<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let canonical: Vec<&str> = ENROLLABLE.iter().map(|k| k.as_str()).filter(|n| chosen.contains(n)).collect();
        let in_order: Vec<FactorKind> = ENROLLABLE.iter().copied().filter(|k| kinds.contains(k)).collect();
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), in_order);
        prop_assert_eq!(set.to_string(), canonical.join(","), "{:?}", text);
        prop_assert_eq!(MethodSet::parse(&set.to_string()), Ok(set));
        prop_assert_eq!(set.to_string().parse::<MethodSet>(), Ok(set));
        prop_assert!(!set.contains(FactorKind::RecoveryCode));
        let json = serde_json::to_string(&set).unwrap();
        prop_assert_eq!(serde_json::from_str::<MethodSet>(&json).unwrap(), set);
    }

    #[test]
    fn method_set_parse_never_panics_names_the_first_unknown_item_and_is_idempotent(
        s in prop_oneof![
            any_text(),
            text_from(METHOD_ALPHABET, 30),
            (method_list(), select(vec!["recovery_code", "totp", "e-mail", "SMS ", "passkeys", "ｓｍｓ"]))
                .prop_map(|((_, text), junk)| format!("{text},{junk}")),
        ],
    ) {
        let unknown = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .find(|i| !ENROLLABLE.iter().any(|k| k.as_str() == i.to_ascii_lowercase()));
        match MethodSet::parse(&s) {
            Ok(set) => {
                prop_assert_eq!(unknown, None, "accepted {:?}", s);
                prop_assert_eq!(MethodSet::parse(&set.to_string()), Ok(set));
            }
            Err(e) => prop_assert_eq!(Some(e.name.as_str()), unknown, "{:?}", s),
        }
    }
}

// ---------------------------------------------------------------------------
// Chosen passwords (password.rs)

proptest! {
    #[test]
    fn new_password_parse_never_panics_and_counts_length_in_characters(
        pw in prop_oneof![
            any_text(),
            "[a-z ]{0,140}",
            vec(select(vec!['\u{e9}', 'x', '\u{1f600}', ' ']), 0..140).prop_map(String::from_iter),
        ],
        min in 0usize..100,
        context in vec(
            prop_oneof![any_text().prop_map(|t| t.chars().take(40).collect::<String>()), valid_email()],
            0..3,
        ),
    ) {
        let policy = PasswordPolicy::with_min_length(min);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        let n = pw.chars().count();
        let result = NewPassword::parse(Password::new(pw.clone()), None, policy, &context);
        if n < policy.min_length {
            prop_assert_eq!(result.err(), Some(PasswordError::TooShort(policy.min_length)));
        } else if n > MAX_LENGTH {
            prop_assert_eq!(result.err(), Some(PasswordError::TooLong));
        } else if let Ok(ok) = result {
            // Accepted passwords are stored exactly as typed: no trimming, no normalization.
            prop_assert_eq!(ok.expose(), pw.as_str());
        }
    }

    #[test]
    fn new_password_with_a_different_confirmation_is_refused(
        pw in "[a-z]{4,8}( [a-z]{4,8}){3,5}",
        typo in "[a-z ]{0,60}",
    ) {
        prop_assume!(typo != pw);
        let r = NewPassword::parse(Password::new(pw.clone()), Some(&typo), PasswordPolicy::default(), &[]);
        prop_assert_eq!(r.err(), Some(PasswordError::Mismatch));
    }

    #[test]
    fn new_password_containing_a_context_word_repetition_or_a_run_is_refused(
        (before, word, after) in ("[a-z0-9 ]{0,20}", valid_email(), "[a-z0-9 ]{0,20}"),
        block in vec(select(vec!['a', 'Z', '7', '!', ' ', '\u{e9}', '\u{4e2d}', '\u{1f600}']), 1..=3),
        reps in 5usize..40,
        run_start in 0x4e00u32..0x9e00,
        run_len in 15usize..=MAX_LENGTH,
        descending in any::<bool>(),
    ) {
        let policy = PasswordPolicy::with_min_length(8);
        // The word in one case in the password and in the other in the context.
        let with_word = format!("{before}{word}{after}");
        if (8..=MAX_LENGTH).contains(&with_word.chars().count()) {
            let context = [word.to_uppercase(), "Clinic-Auth".to_owned()];
            let r = NewPassword::parse(Password::new(with_word.clone()), None, policy, &[&context[0], &context[1]]);
            prop_assert_eq!(r.err(), Some(PasswordError::ContextWord), "{:?}", with_word);
        }
        let repeated: String = block.iter().cycle().take(block.len() * reps).collect();
        if (8..=MAX_LENGTH).contains(&repeated.chars().count()) {
            let r = NewPassword::parse(Password::new(repeated.clone()), None, policy, &[]);
            prop_assert!(matches!(r.err(), Some(PasswordError::Repetitive | PasswordError::Common)), "{:?}", repeated);
        }
        let mut run: Vec<char> = (run_start..).take(run_len).filter_map(char::from_u32).collect();
        if descending {
            run.reverse();
        }
        let run = String::from_iter(run);
        let r = NewPassword::parse(Password::new(run.clone()), None, policy, &[]);
        prop_assert_eq!(r.err(), Some(PasswordError::Repetitive), "{:?}", run);
    }
}

// ---------------------------------------------------------------------------
// Other typed-in values: passkey names, identity notes, device hints, bearer tokens

proptest! {
    #[test]
    fn passkey_names_and_identity_notes_are_trimmed_bounded_one_line_and_idempotent(
        s in prop_oneof![any_text(), "[ a-zA-Z\t\n\u{e9}]{0,70}", "[ a-z\u{e9}\u{4e2d}]{490,510}"],
    ) {
        match PasskeyName::parse(&s) {
            Ok(name) => {
                let n = name.as_str();
                prop_assert_eq!(n, s.trim());
                prop_assert!(!n.is_empty() && n.chars().count() <= 60 && !n.chars().any(char::is_control));
                prop_assert_eq!(PasskeyName::parse(n), Ok(name.clone()));
            }
            Err(PasskeyNameError::Empty) => prop_assert!(s.trim().is_empty()),
            Err(PasskeyNameError::TooLong) => prop_assert!(s.trim().chars().count() > 60),
            Err(PasskeyNameError::ControlCharacter) => prop_assert!(s.trim().chars().any(char::is_control)),
        }
        match IdentityNote::parse(&s) {
            Ok(note) => {
                let n = note.as_str();
                prop_assert_eq!(n, s.trim());
                prop_assert!(!n.is_empty() && n.chars().count() <= IdentityNote::MAX_CHARS);
                prop_assert!(!n.chars().any(char::is_control), "{:?}", n);
                prop_assert_eq!(IdentityNote::parse(n), Ok(note.clone()));
            }
            Err(IdentityNoteError::Missing) => prop_assert!(s.trim().is_empty()),
            Err(IdentityNoteError::Invalid) => prop_assert!(
                s.trim().chars().count() > IdentityNote::MAX_CHARS || s.trim().chars().any(char::is_control)
            ),
        }
    }

    #[test]
    fn device_hints_parse_keeps_only_well_formed_hints_and_round_trips_remembered_ones(
        s in prop_oneof![
            any_text(),
            vec(
                (
                    prop_oneof![3 => "[0-9a-fA-F]{24}", 1 => "[0-9a-fA-Fgx]{23,25}", 1 => "[ xz]{0,3}"],
                    select(vec!["", " ", "\t"]),
                ),
                0..14,
            )
            .prop_map(|items| items.iter().map(|(h, pad)| format!("{pad}{h}{pad}")).collect::<Vec<_>>().join(",")),
        ],
        ids in vec("[a-z0-9]{1,12}", 0..12),
    ) {
        let want: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .take(8)
            .collect();
        prop_assert_eq!(parse_device_hints(&s), want, "{:?}", s);
        let mut list: Vec<String> = Vec::new();
        for id in &ids {
            list = parse_device_hints(&remember_device_hint(&list, &device_hint(id)));
            prop_assert_eq!(list.first(), Some(&device_hint(id)));
        }
        prop_assert!(list.len() <= 8);
        prop_assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), list.len(), "no repeats");
    }

    #[test]
    fn secret_token_is_accepted_only_in_the_shape_of_one_and_round_trips(
        s in prop_oneof![any_text(), "[A-Za-z0-9_-]{42,44}", "[A-Za-z0-9_=+/.-]{43}"],
    ) {
        let shaped = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let presented = SecretToken::from_presented(&s);
        prop_assert_eq!(presented.as_ref().map(SecretToken::expose), shaped.then_some(s.as_str()));
        let made = SecretToken::generate();
        let back = SecretToken::from_presented(made.expose()).unwrap();
        prop_assert_eq!(back.hash(), made.hash());
    }
}

// ---------------------------------------------------------------------------
// Device names from a User-Agent header (user_agent.rs)

/// Pieces of real User-Agent headers, so that random ones often name a browser, a
/// system, both, or a program.
const USER_AGENT_PIECES: &[&str] = &[
    "Mozilla/5.0 ",
    "(Windows NT 10.0; Win64; x64) ",
    "(iPhone; CPU iPhone OS 18_0 like Mac OS X) ",
    "(Linux; Android 14) ",
    "(Macintosh; Intel Mac OS X 10_15_7) ",
    "(X11; Linux x86_64) ",
    "AppleWebKit/537.36 ",
    "Chrome/126.0 ",
    "Safari/537.36 ",
    "Firefox/127.0 ",
    "Edg/126.0 ",
    "CriOS/126 ",
    "OPR/111 ",
    "curl/8.5.0",
    "python-requests/2.31",
    "é",
    "\u{0}",
    "/",
    " ",
    "(",
    ";",
];

fn user_agent_like() -> impl Strategy<Value = String> {
    vec(select(USER_AGENT_PIECES), 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn device_names_never_panic_and_are_short_single_lines_from_the_header(
        s in prop_oneof![any_text(), user_agent_like(), "[ -~]{0,600}"],
    ) {
        let device = Device::parse(&s);
        let name = device_name(&s);
        prop_assert_eq!(&name, &device.name());
        if let Some(n) = &name {
            prop_assert!(!n.is_empty() && n.chars().count() <= 40, "{:?}", n);
            prop_assert!(!n.chars().any(char::is_control), "{:?}", n);
            // A program's name is copied from the header; every other name is ours.
            if device.browser.is_none() && device.system.is_none() {
                prop_assert!(s.trim_start().starts_with(n.as_str()), "{:?} from {:?}", n, s);
                prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
            }
        }
        // Only the first bytes of the header are read.
        let mut longer = s.clone();
        longer.push_str(&" Firefox/1 (Windows)".repeat(40));
        if s.len() >= MAX_READ_BYTES {
            prop_assert_eq!(device_name(&longer), name);
        }
        // A passkey's first name is the device name, or "This device".
        let passkey = PasskeyName::from_user_agent(Some(&s));
        prop_assert_eq!(PasskeyName::parse(passkey.as_str()), Ok(passkey.clone()));
    }
}

// ---------------------------------------------------------------------------
// otpauth:// URIs (totp.rs, with the rules of shared/reference/otp-test-vectors.md)

const ISSUER_ALPHABET: &[char] = &[
    'R',
    'i',
    'v',
    'e',
    ' ',
    ' ',
    ':',
    ':',
    '%',
    '&',
    '=',
    '?',
    '#',
    '+',
    '/',
    '\'',
    '.',
    '~',
    '\t',
    '\n',
    '\u{0}',
    '\u{7f}',
    '\u{e9}',
    '\u{fc}',
    '\u{2028}',
    '\u{3000}',
    '\u{1f600}',
    '\u{5c71}',
];

/// Decodes `%XX` escapes, and refuses anything but RFC 3986 unreserved characters and
/// escapes with upper-case hex: what `otpauth_uri` promises to write.
fn strict_percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b[i].is_ascii_alphanumeric() || b"-._~".contains(&b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 4648 base32 without padding, refusing stray symbols and non-zero tail bits.
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0 && bits < 5).then_some(out)
}

proptest! {
    #[test]
    fn issuer_from_any_name_is_short_colon_free_single_spaced_and_idempotent(
        name in prop_oneof![any_text(), text_from(ISSUER_ALPHABET, 90)],
    ) {
        let issuer = Issuer::from_name(&name);
        let s = issuer.as_str();
        prop_assert!(!s.is_empty() && s.chars().count() <= 64, "{:?}", s);
        prop_assert!(!s.chars().any(|c| c == ':' || c.is_control()), "{:?}", s);
        prop_assert_eq!(s.trim(), s);
        prop_assert!(!s.chars().any(|c| c.is_whitespace() && c != ' ') && !s.contains("  "), "{:?}", s);
        prop_assert_eq!(Issuer::from_name(s), issuer.clone());
    }

    #[test]
    fn otpauth_uri_parses_back_to_the_issuer_account_secret_and_fixed_parameters(
        name in prop_oneof![
            any_text().prop_map(|t| t.chars().take(100).collect::<String>()),
            text_from(ISSUER_ALPHABET, 90),
        ],
        email in valid_email(),
        secret in vec(any::<u8>(), 16..64),
    ) {
        let issuer = Issuer::from_name(&name);
        let account = Email::parse(&email).unwrap();
        let totp = TotpSecret::from_bytes(secret.clone()).unwrap();
        let uri = otpauth_uri(&issuer, &account, &totp);

        let url = url::Url::parse(&uri).map_err(|e| TestCaseError::fail(format!("{e}: {uri}")))?;
        prop_assert_eq!(url.scheme(), "otpauth");
        prop_assert_eq!(url.host_str(), Some("totp"));
        prop_assert_eq!(url.fragment(), None);

        // Label: ISSUER:ACCOUNT, each part percent-encoded, one literal colon between.
        let label = url.path().strip_prefix('/').unwrap_or_default();
        let parts: Vec<&str> = label.split(':').collect();
        prop_assert_eq!(parts.len(), 2, "{}", uri);
        let (label_issuer, label_account) = (strict_percent_decode(parts[0]), strict_percent_decode(parts[1]));
        prop_assert_eq!(label_issuer.as_deref(), Some(issuer.as_str()), "{}", uri);
        prop_assert_eq!(label_account.as_deref(), Some(account.as_str()), "{}", uri);

        // Parameters: each once, every value strictly percent-encoded (space is %20, never +).
        let query = url.query().unwrap_or_default();
        let mut params = std::collections::BTreeMap::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').ok_or_else(|| TestCaseError::fail(format!("{pair:?} in {uri}")))?;
            let v = strict_percent_decode(v).ok_or_else(|| TestCaseError::fail(format!("{pair:?} in {uri}")))?;
            prop_assert!(params.insert(k.to_owned(), v).is_none(), "{} twice in {}", k, uri);
        }
        let want_keys = ["algorithm", "digits", "issuer", "period", "secret"];
        prop_assert_eq!(params.keys().map(String::as_str).collect::<Vec<_>>(), want_keys.to_vec());
        // The url crate's own decoding agrees.
        let decoded: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        prop_assert_eq!(&decoded, &params);

        prop_assert_eq!(params["issuer"].as_str(), issuer.as_str(), "issuer parameter equals the label's prefix");
        prop_assert_eq!(params["algorithm"].as_str(), "SHA1");
        prop_assert_eq!(params["digits"].as_str(), "6");
        prop_assert_eq!(params["period"].as_str(), "30");
        let b32 = &params["secret"];
        prop_assert!(!b32.contains('='), "no padding");
        prop_assert_eq!(b32.len(), (secret.len() * 8).div_ceil(5));
        prop_assert_eq!(base32_decode(b32), Some(secret));
    }
}

// ---------------------------------------------------------------------------
// The audit chain's keyed hash over a canonical encoding of the fields (audit.rs)

/// An event's hashed fields, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    chain: String,
    seq: i64,
    at: i64,
    kind: String,
    outcome: String,
    org_id: Option<String>,
    actor_id: Option<String>,
    subject_id: Option<String>,
    client_ip: String,
    user_agent: String,
    detail: String,
}

impl Event {
    fn fields(&self) -> ChainedFields<'_> {
        ChainedFields {
            chain: &self.chain,
            seq: self.seq,
            at: self.at,
            kind: &self.kind,
            outcome: &self.outcome,
            org_id: self.org_id.as_deref(),
            actor_id: self.actor_id.as_deref(),
            subject_id: self.subject_id.as_deref(),
            client_ip: &self.client_ip,
            user_agent: &self.user_agent,
            detail: &self.detail,
        }
    }

    /// The optional fields, in encoding order.
    fn optional_mut(&mut self, i: usize) -> &mut Option<String> {
        match i % 3 {
            0 => &mut self.org_id,
            1 => &mut self.actor_id,
            _ => &mut self.subject_id,
        }
    }

    /// The text fields that sit next to each other in the encoding, as pairs of
    /// (left, right); an absent optional field counts as empty text.
    fn adjacent_pair(&self, i: usize) -> (String, String) {
        let o = |f: &Option<String>| f.clone().unwrap_or_default();
        match i % 7 {
            0 => (self.kind.clone(), self.outcome.clone()),
            1 => (self.outcome.clone(), o(&self.org_id)),
            2 => (o(&self.org_id), o(&self.actor_id)),
            3 => (o(&self.actor_id), o(&self.subject_id)),
            4 => (o(&self.subject_id), self.client_ip.clone()),
            5 => (self.client_ip.clone(), self.user_agent.clone()),
            _ => (self.user_agent.clone(), self.detail.clone()),
        }
    }

    fn set_adjacent_pair(&mut self, i: usize, left: String, right: String) {
        match i % 7 {
            0 => (self.kind, self.outcome) = (left, right),
            1 => (self.outcome, self.org_id) = (left, Some(right)),
            2 => (self.org_id, self.actor_id) = (Some(left), Some(right)),
            3 => (self.actor_id, self.subject_id) = (Some(left), Some(right)),
            4 => (self.subject_id, self.client_ip) = (Some(left), right),
            5 => (self.client_ip, self.user_agent) = (left, right),
            _ => (self.user_agent, self.detail) = (left, right),
        }
    }
}

/// Field text full of what a naive encoding would trip on: separators, quotes,
/// escapes, newlines, NUL and length-like digits.
const AUDIT_ALPHABET: &[char] = &[
    'a',
    'b',
    '1',
    '0',
    ',',
    '|',
    ':',
    ';',
    '=',
    '"',
    '\'',
    '\\',
    '{',
    '}',
    '\n',
    '\r',
    '\t',
    ' ',
    '\u{0}',
    '\u{1}',
    '\u{8}',
    '\u{e9}',
    '\u{1f600}',
];

/// What an encoding might put between fields: text separators and quotes, or (`None`)
/// the bytes that start the right-hand field in a tag-only encoding: its tag (5 for
/// `kind` … 12 for `detail`) and a presence byte.
fn smuggled_separator() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        select(vec![",", "|", ";", "=", ":", "\n", "\r\n", "\t", "\u{0}", "\"", "\",\"", "\\"])
            .prop_map(|s| Some(s.to_owned())),
        Just(None),
    ]
}

fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![4 => text_from(AUDIT_ALPHABET, 12), 1 => vec(any::<char>(), 0..40).prop_map(String::from_iter)]
}

fn event() -> impl Strategy<Value = Event> {
    (
        (field_text(), 1i64..5, any::<i64>(), field_text(), field_text()),
        (
            prop::option::of(field_text()),
            prop::option::of(field_text()),
            prop::option::of(field_text()),
            field_text(),
            field_text(),
            field_text(),
        ),
    )
        .prop_map(
            |((chain, seq, at, kind, outcome), (org_id, actor_id, subject_id, client_ip, user_agent, detail))| Event {
                chain,
                seq,
                at,
                kind,
                outcome,
                org_id,
                actor_id,
                subject_id,
                client_ip,
                user_agent,
                detail,
            },
        )
}

/// `Some(text)`, or `None` when that is what the field holds already.
fn other_than(current: &Option<String>, text: String) -> Option<String> {
    if current.as_ref() == Some(&text) { None } else { Some(text) }
}

fn keyring(version: i64, key: [u8; 32]) -> ChainKeys {
    ChainKeys::new([(version, Zeroizing::new(key))]).unwrap()
}

/// Verifies a one-event chain holding `stored` fields with the hash made over `hashed`.
fn verify_one(keys: &ChainKeys, stored: &Event, hash: &str) -> Result<i64, ChainBreak> {
    let link = StoredLink { id: 1, fields: stored.fields(), prev_hash: GENESIS, hash };
    verify_chain(keys, &stored.chain, &[link], Some((1, hash)))
}

proptest! {
    #[test]
    fn audit_hash_verifies_with_its_key_and_fails_with_another_key_or_a_changed_field(
        mut ev in event(),
        key in any::<[u8; 32]>(),
        other_key in any::<[u8; 32]>(),
        version in 1i64..1000,
        changed in 0usize..11,
        replacement in field_text(),
    ) {
        ev.seq = 1;
        let keys = keyring(version, key);
        let hash = keys.link_hash(GENESIS, &ev.fields());
        let hex = hash.strip_prefix(&format!("v{version}:")).unwrap_or_default();
        prop_assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{}", hash);
        prop_assert_eq!(verify_one(&keys, &ev, &hash), Ok(1));

        prop_assume!(other_key != key);
        let other = verify_one(&keyring(version, other_key), &ev, &hash);
        prop_assert!(matches!(other, Err(ChainBreak::Edited { .. })), "{:?}", other);
        let unknown = verify_one(&keyring(version + 1, key), &ev, &hash);
        prop_assert!(
            matches!(unknown, Err(ChainBreak::UnknownKey { version: v, .. }) if v == version),
            "{:?}",
            unknown
        );

        let mut edited = ev.clone();
        match changed {
            0 => edited.chain = replacement,
            1 => edited.at = edited.at.wrapping_add(1),
            2 => edited.kind = replacement,
            3 => edited.outcome = replacement,
            4 => edited.org_id = other_than(&ev.org_id, replacement),
            5 => edited.actor_id = other_than(&ev.actor_id, replacement),
            6 => edited.subject_id = other_than(&ev.subject_id, replacement),
            7 => edited.client_ip = replacement,
            8 => edited.user_agent = replacement,
            9 => edited.detail = replacement,
            _ => edited.seq = 2,
        }
        prop_assume!(edited != ev);
        if edited.seq == 1 {
            prop_assert!(matches!(verify_one(&keys, &edited, &hash), Err(ChainBreak::Edited { .. })), "{:?}", edited);
        }
        prop_assert_ne!(keys.link_hash(GENESIS, &edited.fields()), hash);
    }

    #[test]
    fn audit_encoding_is_injective_when_text_moves_between_adjacent_fields(
        ev in event(),
        pair in 0usize..7,
        split in any::<prop::sample::Index>(),
        optional in 0usize..3,
        prev in prop_oneof![Just(GENESIS.to_owned()), "[0-9a-f:v]{0,70}"],
        (sep, middle) in (smuggled_separator(), field_text()),
    ) {
        let keys = keyring(1, [7; 32]);
        let hash = |e: &Event| keys.link_hash(&prev, &e.fields());

        // The same text cut at another place between two neighbouring fields.
        let (left, right) = ev.adjacent_pair(pair);
        let joined = format!("{left}{right}");
        let cuts: Vec<usize> = (0..=joined.len()).filter(|&i| joined.is_char_boundary(i)).collect();
        let cut = cuts[split.index(cuts.len())];
        let mut moved = ev.clone();
        moved.set_adjacent_pair(pair, joined[..cut].to_owned(), joined[cut..].to_owned());
        let mut original = ev.clone();
        original.set_adjacent_pair(pair, left.clone(), right.clone());
        if cut != left.len() {
            prop_assert_ne!(hash(&moved), hash(&original), "{:?} | {:?} vs cut at {}", left, right, cut);
        }

        // A separator inside a field's text is not taken for a field boundary:
        // (A + sep + B, C) and (A, B + sep + C) differ.
        let tag_of_right = u8::try_from(6 + pair).unwrap();
        let sep = sep.unwrap_or_else(|| String::from_iter([char::from(tag_of_right), '\u{1}']));
        let mut sep_left = ev.clone();
        sep_left.set_adjacent_pair(pair, format!("{left}{sep}{middle}"), right.clone());
        let mut sep_right = ev.clone();
        sep_right.set_adjacent_pair(pair, left.clone(), format!("{middle}{sep}{right}"));
        prop_assert_ne!(hash(&sep_left), hash(&sep_right), "{:?} / {:?} / {:?} / {:?}", left, sep, middle, right);

        // An absent optional field is not the same as an empty one.
        let mut none = ev.clone();
        *none.optional_mut(optional) = None;
        let mut empty = ev.clone();
        *empty.optional_mut(optional) = Some(String::new());
        prop_assert_ne!(hash(&none), hash(&empty));

        // The two numbers are not interchangeable, and the previous hash is covered.
        let swapped = Event { seq: ev.at, at: ev.seq, ..ev.clone() };
        if ev.seq != ev.at {
            prop_assert_ne!(hash(&swapped), hash(&ev));
        }
        prop_assert_ne!(keys.link_hash(&format!("{prev}0"), &ev.fields()), hash(&ev));
        // The previous hash and the chain name do not run into each other either.
        let shifted = Event { chain: format!("0{}", ev.chain), ..ev.clone() };
        prop_assert_ne!(keys.link_hash(&format!("{prev}0"), &ev.fields()), hash(&shifted));
    }

    #[test]
    fn audit_distinct_events_never_share_a_hash(a in event(), b in event()) {
        prop_assume!(a != b);
        let keys = keyring(1, [7; 32]);
        prop_assert_ne!(keys.link_hash(GENESIS, &a.fields()), keys.link_hash(GENESIS, &b.fields()));
    }
}

proptest! {
    /// A typed answer is accepted for a method exactly when that method's own parser
    /// accepts it; a passkey never takes a typed answer.
    #[test]
    fn a_factor_answer_is_parsed_by_its_methods_parser_and_nothing_else(
        s in prop_oneof![any_text(), text_from(DIGIT_CODE_ALPHABET, 16), code_like()],
        method in select(vec![
            FactorKind::Authenticator, FactorKind::Email, FactorKind::Sms, FactorKind::RecoveryCode, FactorKind::Passkey,
        ]),
    ) {
        let own = match method {
            FactorKind::Authenticator => TotpCode::parse(&s).is_ok(),
            FactorKind::Email | FactorKind::Sms => OneTimeCode::parse(&s).is_ok(),
            FactorKind::RecoveryCode => RecoveryCode::parse(&s).is_ok(),
            FactorKind::Passkey => false,
        };
        let parsed = FactorAnswer::parse(method, &s);
        prop_assert_eq!(parsed.is_ok(), own, "{:?} {:?}", method, s);
        if let Ok(answer) = parsed {
            prop_assert_eq!(answer.method(), method);
        }
    }
}

// ---------------------------------------------------------------------------
// Branding (branding.rs): display name, accent colour, logo

/// A PNG signature and IHDR header of the given size, then `tail` bytes.
fn png_header(width: u32, height: u32, tail: &[u8]) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(tail);
    v
}

proptest! {
    /// Any text: a display name is refused or comes back trimmed, without control
    /// characters, 1 to 80 characters, and parsing it again changes nothing.
    #[test]
    fn display_name_never_panics_and_is_idempotent(s in any_text()) {
        if let Ok(name) = DisplayName::parse(&s) {
            let n = name.as_str();
            prop_assert_eq!(n, s.trim());
            prop_assert!((1..=80).contains(&n.chars().count()));
            prop_assert!(!n.chars().any(char::is_control));
            prop_assert_eq!(DisplayName::parse(n), Ok(name.clone()));
        }
    }

    /// Every `#rrggbb` is either accepted with white-text contrast of at least 4.5:1
    /// (and prints back as itself, lowercase) or refused as too light, saying 4.5:1.
    #[test]
    fn accent_color_accepts_exactly_the_dark_enough_hex_colors(r in any::<u8>(), g in any::<u8>(), b in any::<u8>(), upper in any::<bool>()) {
        let hex = format!("#{r:02x}{g:02x}{b:02x}");
        let typed = if upper { hex.to_uppercase() } else { hex.clone() };
        let ratio = (1.05) / (relative_luminance([r, g, b]) + 0.05);
        match AccentColor::parse(&typed) {
            Ok(c) => {
                prop_assert!(ratio >= 4.5);
                prop_assert_eq!(c.hex(), hex);
            }
            Err(e) => {
                prop_assert!(ratio < 4.5, "{} refused at {}", hex, ratio);
                prop_assert!(matches!(e, BrandingError::ColorTooLight { .. }), "{:?}", e);
                prop_assert!(e.to_string().contains("4.5:1"));
            }
        }
    }

    /// Any text is either a well-formed colour or refused; never a panic.
    #[test]
    fn accent_color_never_panics(s in prop_oneof![any_text(), "#[0-9a-fA-FgG]{0,8}"]) {
        if let Ok(c) = AccentColor::parse(&s) {
            prop_assert_eq!(c.hex(), s.trim().to_lowercase());
        }
    }

    /// Arbitrary bytes (with or without an image's signature in front) never panic,
    /// and whatever is accepted is a PNG, JPEG or WebP within the limits.
    #[test]
    fn logo_parse_never_panics_and_keeps_its_limits(
        prefix in select(vec![&b""[..], b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBPVP8 ", b"<svg"]),
        body in vec(any::<u8>(), 0..2048),
        declared in prop::option::of(select(vec!["image/png", "image/jpeg", "image/webp", "image/svg+xml", "text/html", ""])),
    ) {
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&body);
        if let Ok(logo) = LogoImage::parse(bytes.clone(), declared) {
            prop_assert!(matches!(logo.format(), LogoFormat::Png | LogoFormat::Jpeg | LogoFormat::Webp));
            prop_assert!(logo.width() >= 1 && logo.width() <= LOGO_MAX_SIDE && logo.height() >= 1 && logo.height() <= LOGO_MAX_SIDE);
            prop_assert_eq!(logo.bytes(), &bytes[..]);
            prop_assert!(declared != Some("image/svg+xml") && !bytes.starts_with(b"<"));
        }
    }

    /// A PNG header's size decides: within 1024×1024 it is accepted, beyond it refused
    /// with the size it has.
    #[test]
    fn logo_pixels_are_bounded(w in 1u32..3000, h in 1u32..3000) {
        let result = LogoImage::parse(png_header(w, h, &[]), Some("image/png"));
        if w <= 1024 && h <= 1024 {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result, Err(LogoError::TooManyPixels { width: w as usize, height: h as usize }));
        }
    }
}
