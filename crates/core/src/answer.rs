//! What a person typed to prove a second factor, parsed once for the method asked:
//! six digits from an authenticator app, six digits sent by email or text, or the
//! recovery code. A malformed answer never reaches a check (it cannot be a guess, so
//! it is not counted against anyone).

use crate::one_time_code::OneTimeCodeError;
use crate::recovery_code::RecoveryCodeError;
use crate::totp::TotpCodeError;
use crate::{FactorKind, OneTimeCode, RecoveryCode, TotpCode};

/// A typed answer in the shape its method expects.
#[derive(Debug, Clone)]
pub enum FactorAnswer {
    /// The code an authenticator app shows.
    Authenticator(TotpCode),
    /// A code sent by email or text message (`channel`).
    Sent { channel: FactorKind, code: OneTimeCode },
    /// The account's recovery code.
    Recovery(RecoveryCode),
}

/// Why an answer was refused before any check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Authenticator(#[from] TotpCodeError),
    #[error(transparent)]
    Sent(#[from] OneTimeCodeError),
    #[error(transparent)]
    Recovery(#[from] RecoveryCodeError),
    /// A passkey answers a WebAuthn challenge, never a typed code.
    #[error("Use your passkey to continue.")]
    Passkey,
}

impl FactorAnswer {
    pub fn parse(method: FactorKind, input: &str) -> Result<FactorAnswer, AnswerError> {
        Ok(match method {
            FactorKind::Authenticator => FactorAnswer::Authenticator(TotpCode::parse(input)?),
            FactorKind::Email | FactorKind::Sms => {
                FactorAnswer::Sent { channel: method, code: OneTimeCode::parse(input)? }
            }
            FactorKind::RecoveryCode => FactorAnswer::Recovery(RecoveryCode::parse(input)?),
            FactorKind::Passkey => return Err(AnswerError::Passkey),
        })
    }

    /// The method this answer proves.
    pub fn method(&self) -> FactorKind {
        match self {
            FactorAnswer::Authenticator(_) => FactorKind::Authenticator,
            FactorAnswer::Sent { channel, .. } => *channel,
            FactorAnswer::Recovery(_) => FactorKind::RecoveryCode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_takes_the_shape_it_sends_or_shows() {
        let table: &[(FactorKind, &str, Result<FactorKind, AnswerError>)] = &[
            (FactorKind::Authenticator, "123 456", Ok(FactorKind::Authenticator)),
            (FactorKind::Authenticator, "12345", Err(AnswerError::Authenticator(TotpCodeError))),
            (FactorKind::Email, "123-456", Ok(FactorKind::Email)),
            (FactorKind::Sms, "123456", Ok(FactorKind::Sms)),
            (FactorKind::Sms, "12345a", Err(AnswerError::Sent(OneTimeCodeError))),
            (FactorKind::RecoveryCode, "123456", Err(AnswerError::Recovery(RecoveryCodeError))),
            (FactorKind::Passkey, "123456", Err(AnswerError::Passkey)),
        ];
        for (method, input, want) in table {
            let got = FactorAnswer::parse(*method, input).map(|a| a.method());
            assert_eq!(&got, want, "{method:?} {input:?}");
        }
        let code = RecoveryCode::generate();
        let parsed = FactorAnswer::parse(FactorKind::RecoveryCode, &code.display());
        assert!(matches!(parsed, Ok(FactorAnswer::Recovery(c)) if c.hash() == code.hash()));
    }
}
