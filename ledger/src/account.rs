//! Named ledger accounts, as seen from one merchant's partition.
//!
//! Merchant accounts (`merchant:<id>:payable`, `merchant:<id>:disputes`) belong to exactly one
//! merchant, so every constraint on them is checked locally and exactly by the partition that
//! owns the merchant. Shared accounts (`processor:<p>:clearing`, `platform:fees`,
//! `cash:<bank>`) are touched by every merchant: each partition tracks the movements its own
//! merchants caused, and their global balance is the sum over partitions (the projectors
//! compute it). Shared accounts carry no balance constraint, so nothing global is ever checked.

use std::fmt;

use thiserror::Error;

use crate::processor::Processor;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// What the platform owes the merchant. Constrained: debits never exceed posted credits.
    MerchantPayable,
    /// What the merchant owes the platform because of disputes (chargebacks).
    MerchantDisputes,
    /// What the processor owes the platform.
    ProcessorClearing(Processor),
    /// Processor fees the platform paid.
    PlatformFees,
    /// A platform bank account.
    Cash(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not an account of this merchant's ledger")]
pub struct AccountError(pub String);

impl Account {
    /// The account's name, with `merchant_id` filled in for merchant accounts.
    pub fn name(&self, merchant_id: &str) -> String {
        match self {
            Account::MerchantPayable => format!("merchant:{merchant_id}:payable"),
            Account::MerchantDisputes => format!("merchant:{merchant_id}:disputes"),
            Account::ProcessorClearing(p) => format!("processor:{p}:clearing"),
            Account::PlatformFees => "platform:fees".to_owned(),
            Account::Cash(bank) => format!("cash:{bank}"),
        }
    }

    /// Parses an account name from an event of `merchant_id`. Another merchant's account is
    /// refused: a partition's events never touch it.
    pub fn parse(name: &str, merchant_id: &str) -> Result<Account, AccountError> {
        let refuse = || AccountError(name.to_owned());
        if name == "platform:fees" {
            return Ok(Account::PlatformFees);
        }
        if let Some(bank) = name.strip_prefix("cash:") {
            return if valid_bank_account(bank) {
                Ok(Account::Cash(bank.to_owned()))
            } else {
                Err(refuse())
            };
        }
        if let Some(rest) = name.strip_prefix("processor:") {
            let processor = rest.strip_suffix(":clearing").ok_or_else(refuse)?;
            return Processor::parse(processor)
                .map(Account::ProcessorClearing)
                .ok_or_else(refuse);
        }
        let rest = name
            .strip_prefix("merchant:")
            .and_then(|r| r.strip_prefix(merchant_id))
            .ok_or_else(refuse)?;
        match rest {
            ":payable" => Ok(Account::MerchantPayable),
            ":disputes" => Ok(Account::MerchantDisputes),
            _ => Err(refuse()),
        }
    }
}

/// A bank account id: 1-64 characters of `a-z 0-9 - _`.
pub fn valid_bank_account(bank: &str) -> bool {
    !bank.is_empty()
        && bank.len() <= 64
        && bank
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name("<merchant>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_merchant_accounts_are_refused() {
        let accounts = [
            Account::MerchantPayable,
            Account::MerchantDisputes,
            Account::ProcessorClearing(Processor::Square),
            Account::PlatformFees,
            Account::Cash("barclays-gbp".into()),
        ];
        for a in accounts {
            assert_eq!(Account::parse(&a.name("m-1"), "m-1"), Ok(a.clone()));
        }
        assert!(Account::parse("merchant:m-2:payable", "m-1").is_err());
        assert!(Account::parse("merchant:m-1:payable", "m-1:x").is_err());
        assert!(Account::parse("processor:paypal:clearing", "m-1").is_err());
        assert!(Account::parse("cash:", "m-1").is_err());
        assert!(Account::parse("cash:Bad Bank", "m-1").is_err());
    }
}
