//! Payment tokens: what stands in for a card. A card number is never accepted.

use crate::rejection::Rejection;

/// Checks a processor/PCI Proxy token. Rejects anything that could be a primary account
/// number: 12-19 digits (spaces or dashes between them ignored) that pass the Luhn check.
pub fn check_token(token: &str) -> Result<(), Rejection> {
    if token.is_empty() || token.len() > 256 {
        return Err(Rejection::InvalidPaymentToken);
    }
    // Before the character check: a card number with spaces must be named for what it is.
    if looks_like_pan(token) {
        return Err(Rejection::CardNumberRejected);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::InvalidPaymentToken);
    }
    Ok(())
}

fn looks_like_pan(token: &str) -> bool {
    // Any run of digits (allowing separators) long enough to be a PAN, anywhere in the token.
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    for b in token.bytes().chain(std::iter::once(b'x')) {
        match b {
            b'0'..=b'9' => digits.push(b - b'0'),
            b' ' | b'-' if !digits.is_empty() => {}
            _ => {
                if (12..=19).contains(&digits.len()) && luhn_ok(&digits) {
                    return true;
                }
                if digits.len() > 19 && digits.windows(16).any(luhn_ok) {
                    return true;
                }
                digits.clear();
            }
        }
    }
    false
}

fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_refused_in_any_disguise() {
        for pan in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "pan:4242424242424242",
            "378282246310005",
            "6011111111111117",
        ] {
            assert_eq!(
                check_token(pan),
                Err(Rejection::CardNumberRejected),
                "{pan}"
            );
        }
    }

    #[test]
    fn real_tokens_pass() {
        for token in [
            "tok_visa",
            "pm_1N3bUe2eZvKYlo2C0x9nJk3a",
            "cnon:card-nonce-ok",
            "pciproxy_7f3c2a9e",
            "4242424242424241", // fails Luhn: not a card number
            "order-12345",
        ] {
            assert_eq!(check_token(token), Ok(()), "{token}");
        }
    }

    #[test]
    fn empty_long_or_non_printable_tokens_are_invalid() {
        assert_eq!(check_token(""), Err(Rejection::InvalidPaymentToken));
        assert_eq!(
            check_token(&"a".repeat(257)),
            Err(Rejection::InvalidPaymentToken)
        );
        assert_eq!(check_token("tok visa"), Err(Rejection::InvalidPaymentToken));
    }
}
