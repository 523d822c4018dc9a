//! US mobile numbers for text-message codes.

use std::fmt;

use phonenumber::country::Id;
use phonenumber::{Mode, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("Enter a 10-digit US mobile number, like (555) 123-4567.")]
    Malformed,
    #[error("Text messages can only go to US mobile numbers (+1). Choose another method for numbers outside the US.")]
    NotUs,
    #[error(
        "This number cannot receive text messages (toll-free, premium-rate and similar numbers are not mobile phones). Enter your mobile number."
    )]
    NotMobile,
}

/// A US phone number that can receive text messages, in E.164 form (`+15551234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsPhone(String);

impl UsPhone {
    /// Accepts the ways people write US numbers: `(555) 123-4567`, `555.123.4567`,
    /// `+1 555 123 4567`, `1-555-123-4567`.
    /// The example the phone form shows: a number it accepts (NANP's 555-01xx range
    /// is set aside for examples).
    pub const EXAMPLE: &'static str = "(201) 555-0123";

    pub fn parse(input: &str) -> Result<UsPhone, PhoneError> {
        let trimmed = input.trim();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        let allowed = trimmed.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !allowed || !(10..=15).contains(&digits) || trimmed.len() > 32 {
            return Err(PhoneError::Malformed);
        }
        if trimmed.starts_with('+') && !trimmed.starts_with("+1") {
            return Err(PhoneError::NotUs);
        }
        let number = phonenumber::parse(Some(Id::US), trimmed).map_err(|_| PhoneError::Malformed)?;
        if number.code().value() != 1 {
            return Err(PhoneError::NotUs);
        }
        if !number.is_valid() {
            // A +1 number that is not a valid US one may belong to Canada or the Caribbean.
            return Err(if number.country().id().is_some_and(|c| c != Id::US) {
                PhoneError::NotUs
            } else {
                PhoneError::Malformed
            });
        }
        if number.country().id() != Some(Id::US) {
            return Err(PhoneError::NotUs);
        }
        match number.number_type(&phonenumber::metadata::DATABASE) {
            // US numbers do not say whether they are mobile; these can be.
            Type::Mobile | Type::FixedLineOrMobile | Type::PersonalNumber => {}
            _ => return Err(PhoneError::NotMobile),
        }
        Ok(UsPhone(number.format().mode(Mode::E164).to_string()))
    }

    /// Re-reads a number stored by `parse`.
    pub fn from_e164(s: &str) -> Result<UsPhone, PhoneError> {
        if s.starts_with("+1") && s.len() == 12 { UsPhone::parse(s) } else { Err(PhoneError::Malformed) }
    }

    pub fn e164(&self) -> &str {
        &self.0
    }

    /// For showing where a code went without showing the number: `(•••) •••-4567`.
    pub fn masked(&self) -> String {
        let last4: String = self.0.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("(•••) •••-{last4}")
    }
}

impl fmt::Display for UsPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_example_shown_on_the_form_is_accepted() {
        assert!(UsPhone::parse(UsPhone::EXAMPLE).is_ok());
    }

    use super::*;

    #[test]
    fn us_numbers_in_every_usual_shape_normalize_to_e164() {
        for input in [
            "(201) 555-0123",
            "201-555-0123",
            "201.555.0123",
            "2015550123",
            "+1 201 555 0123",
            "1 (201) 555-0123",
            " +12015550123 ",
        ] {
            assert_eq!(UsPhone::parse(input).map(|p| p.0), Ok("+12015550123".to_owned()), "{input}");
        }
        assert_eq!(UsPhone::from_e164("+12015550123").map(|p| p.masked()), Ok("(•••) •••-0123".to_owned()));
    }

    #[test]
    fn other_countries_are_refused_with_a_reason() {
        for input in ["+44 20 7946 0958", "+49 30 901820", "+52 55 1234 5678", "+1 416 555 0123", "+1 604 555 0199"] {
            assert_eq!(UsPhone::parse(input), Err(PhoneError::NotUs), "{input}");
        }
    }

    #[test]
    fn numbers_that_cannot_take_texts_are_refused() {
        for input in ["(800) 555-0123", "+1 888 555 0100", "900-555-0123"] {
            assert_eq!(UsPhone::parse(input), Err(PhoneError::NotMobile), "{input}");
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        for input in [
            "",
            "555-0123",
            "12345",
            "(201) 555-012",
            "201555012345678901",
            "call me",
            "201-555-O123",
            "+",
            "911",
            "(000) 555-0123",
            "2015550123 ext 5",
        ] {
            assert!(UsPhone::parse(input).is_err(), "{input}");
        }
        assert_eq!(UsPhone::from_e164("2015550123"), Err(PhoneError::Malformed));
    }
}
