//! Exact money: `rust_decimal` amounts in an ISO 4217 currency with its minor-unit exponent.
//!
//! An amount with more decimals than its currency allows is rejected, never rounded:
//!
//! ```
//! use ledger::money::{Money, MoneyError};
//! let ok = Money::parse("10.5", "GBP").unwrap();
//! assert_eq!(ok.to_string(), "10.50 GBP");
//! assert_eq!(Money::parse("10.505", "GBP"), Err(MoneyError::TooPrecise { currency: "GBP", exponent: 2 }));
//! assert_eq!(Money::parse("1000", "JPY").unwrap().canonical_amount(), "1000");
//! assert!(Money::parse("1.5", "JPY").is_err());
//! assert_eq!(Money::parse("1.234", "BHD").unwrap().canonical_amount(), "1.234");
//! ```

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use thiserror::Error;

/// An ISO 4217 currency that payledger accepts, with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

/// The currencies payledger accepts (code, minor-unit exponent per ISO 4217).
/// Adding one is a one-line change; guessing an exponent is not allowed.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

impl Currency {
    /// Looks up an upper-case ISO 4217 code.
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES
            .binary_search_by(|(c, _)| c.cmp(&code))
            .ok()
            .map(|i| Currency {
                code: CURRENCIES[i].0,
                exponent: CURRENCIES[i].1,
            })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point in the currency's minor unit (JPY 0, GBP 2, BHD 3).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// `value` written with exactly this currency's decimals (`0.00` GBP, `1500` JPY). For
    /// amounts computed from exact ones (sums, balances, zero): never rounds in practice,
    /// since those already fit the exponent.
    pub fn format(&self, value: Decimal) -> String {
        let mut v = value;
        v.rescale(self.exponent);
        v.to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// The largest amount payledger accepts in any currency, in major units. Far above any real
/// payment, far below where `Decimal` arithmetic on sums could overflow.
pub const MAX_AMOUNT_MAJOR_UNITS: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("currency {0:?} is not a supported ISO 4217 code")]
    UnsupportedCurrency(String),
    #[error("amount is not a plain decimal number")]
    NotADecimal,
    #[error("{currency} allows at most {exponent} decimal places")]
    TooPrecise {
        currency: &'static str,
        exponent: u32,
    },
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount exceeds the limit of {MAX_AMOUNT_MAJOR_UNITS} major units")]
    TooLarge,
}

impl MoneyError {
    /// The stable rejection code for this error.
    pub fn reason_code(&self) -> &'static str {
        match self {
            MoneyError::UnsupportedCurrency(_) => "unsupported_currency",
            MoneyError::NotADecimal => "invalid_amount",
            MoneyError::TooPrecise { .. } => "amount_precision",
            MoneyError::NotPositive => "amount_not_positive",
            MoneyError::TooLarge => "amount_too_large",
        }
    }
}

/// A positive, exact amount in one currency, scaled to the currency's exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Parses a positive amount such as `"10.50"` in `currency`. Plain decimal notation only:
    /// no exponent, no sign other than an (invalid) minus, no thousands separators.
    pub fn parse(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = Currency::from_code(currency)
            .ok_or_else(|| MoneyError::UnsupportedCurrency(currency.to_owned()))?;
        let plain = !amount.is_empty()
            && amount.len() <= 40
            && amount
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
        if !plain {
            return Err(MoneyError::NotADecimal);
        }
        // Count decimals in the text: `Decimal::from_str` rounds beyond 28 decimals, and a
        // rounded amount must never get through as if it had been sent.
        if let Some((_, fraction)) = amount.split_once('.')
            && fraction.trim_end_matches('0').len() > currency.exponent as usize
        {
            return Err(MoneyError::TooPrecise {
                currency: currency.code,
                exponent: currency.exponent,
            });
        }
        let value = Decimal::from_str(amount).map_err(|_| MoneyError::NotADecimal)?;
        if value.normalize().scale() > currency.exponent {
            return Err(MoneyError::TooPrecise {
                currency: currency.code,
                exponent: currency.exponent,
            });
        }
        if value <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        if value > Decimal::from(MAX_AMOUNT_MAJOR_UNITS) {
            return Err(MoneyError::TooLarge);
        }
        let mut scaled = value;
        scaled.rescale(currency.exponent);
        debug_assert_eq!(scaled, value, "rescaling must never change the value");
        Ok(Money {
            amount: scaled,
            currency,
        })
    }

    /// Parses a fee: like [`Money::parse`], except that zero is allowed (`Ok(None)`).
    pub fn parse_fee(amount: &str, currency: &str) -> Result<Option<Money>, MoneyError> {
        match Money::parse(amount, currency) {
            Err(MoneyError::NotPositive) if Decimal::from_str(amount) == Ok(Decimal::ZERO) => {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// An amount computed from others of the same currency (a remainder, a net). `None` when
    /// it is not positive. Panics if the value has more decimals than the currency: the
    /// inputs were exact in this currency, so sums and differences are too.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Option<Money> {
        if amount <= Decimal::ZERO {
            return None;
        }
        let mut scaled = amount;
        scaled.rescale(currency.exponent);
        assert_eq!(scaled, amount, "{amount} does not fit {currency}");
        Some(Money {
            amount: scaled,
            currency,
        })
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount with exactly the currency's number of decimals: `"10.50"`, `"1000"`, `"1.234"`.
    pub fn canonical_amount(&self) -> String {
        self.amount.to_string()
    }

    /// The amount as it travels on the wire.
    pub fn to_wire(&self) -> schemas::WireMoney {
        schemas::WireMoney {
            amount: self.canonical_amount(),
            currency: self.currency.code.to_owned(),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_is_sorted_and_unique_for_binary_search() {
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        assert_eq!(Currency::from_code("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::from_code("GBP").unwrap().exponent(), 2);
        assert_eq!(Currency::from_code("BHD").unwrap().exponent(), 3);
        assert_eq!(Currency::from_code("gbp"), None);
        assert_eq!(Currency::from_code("XXX"), None);
    }

    #[test]
    fn amounts_are_scaled_to_the_currency_exponent_exactly() {
        assert_eq!(
            Money::parse("10.5", "GBP").unwrap().canonical_amount(),
            "10.50"
        );
        assert_eq!(
            Money::parse("10.500", "GBP").unwrap().canonical_amount(),
            "10.50"
        );
        assert_eq!(
            Money::parse("7", "BHD").unwrap().canonical_amount(),
            "7.000"
        );
        assert_eq!(
            Money::parse("0.001", "KWD").unwrap().canonical_amount(),
            "0.001"
        );
        assert_eq!(Money::parse("1", "JPY").unwrap().canonical_amount(), "1");
        assert_eq!(
            Money::parse("0.1", "USD").unwrap().amount()
                + Money::parse("0.2", "USD").unwrap().amount(),
            Decimal::from_str("0.30").unwrap()
        );
    }

    #[test]
    fn bad_amounts_are_rejected_with_a_precise_reason() {
        let cases = [
            ("10.555", "GBP", "amount_precision"),
            ("1.5", "JPY", "amount_precision"),
            ("1.2345", "BHD", "amount_precision"),
            ("0", "GBP", "amount_not_positive"),
            ("-5.00", "GBP", "amount_not_positive"),
            ("1e3", "GBP", "invalid_amount"),
            ("1,000.00", "GBP", "invalid_amount"),
            (" 10", "GBP", "invalid_amount"),
            ("", "GBP", "invalid_amount"),
            ("NaN", "GBP", "invalid_amount"),
            ("10.00", "XXX", "unsupported_currency"),
            ("1000000000000.01", "USD", "amount_too_large"),
            // Beyond rust_decimal's 28 decimals, parsing alone would round to 1.00.
            (
                "1.000000000000000000000000000001",
                "GBP",
                "amount_precision",
            ),
            (
                "0.0000000000000000000000000000001",
                "GBP",
                "amount_precision",
            ),
        ];
        for (amount, currency, code) in cases {
            let err = Money::parse(amount, currency).unwrap_err();
            assert_eq!(err.reason_code(), code, "{amount} {currency}");
        }
    }
}
