//! Masked recipients for logs and for "we sent a code to …" pages.

const BULLET: char = '•';

/// `dana@riverside.test` → `d•••@riverside.test`. Something that is not an address is masked
/// whole (`•••`).
pub fn mask_email(address: &str) -> String {
    let address = address.trim();
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}{BULLET}{BULLET}{BULLET}@{domain}")
        }
        _ => "•••".to_owned(),
    }
}

/// `+15551234567` → `+1••••••4567`: the first two and the last four characters stay, every other
/// one becomes a bullet. Anything shorter than eight characters is masked whole.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let n = chars.len();
    if n < 8 {
        return "•••".to_owned();
    }
    chars.iter().enumerate().map(|(i, c)| if i < 2 || i + 4 >= n { *c } else { BULLET }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_keeps_first_letter_and_domain() {
        assert_eq!(mask_email("dana@riverside.test"), "d•••@riverside.test");
        assert_eq!(mask_email("é@x.test"), "é•••@x.test");
        assert_eq!(mask_email("not-an-address"), "•••");
        assert_eq!(mask_email("@x.test"), "•••");
    }

    #[test]
    fn phone_keeps_country_prefix_and_last_four() {
        assert_eq!(mask_phone("+15551234567"), "+1••••••4567");
        assert_eq!(mask_phone("+1555"), "•••");
    }
}
