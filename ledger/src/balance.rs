//! Double entry: balances of `debits/credits × pending/posted` per account and currency, and
//! the postings (two-phase transfers, as in TigerBeetle) that move them.
//!
//! A posting has one debit account, one credit account and one amount, so every posting, and
//! therefore every event, balances per currency by construction. What can still go wrong is
//! *which* balances move: posting or voiding more than is pending, or overdrawing a
//! constrained account. [`Balances::apply`] refuses both.

use std::collections::HashMap;

use rust_decimal::Decimal;
use schemas::{Posting, PostingPhase};
use thiserror::Error;

use crate::account::{Account, AccountError};
use crate::money::{Currency, Money, MoneyError};

/// One account's balance in one currency. All four figures are never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub debits_pending: Decimal,
    pub debits_posted: Decimal,
    pub credits_pending: Decimal,
    pub credits_posted: Decimal,
}

impl Balance {
    /// Credits minus debits, posted only (a liability's balance, e.g. what the platform owes
    /// a merchant).
    pub fn credit_balance_posted(&self) -> Decimal {
        self.credits_posted - self.debits_posted
    }

    /// Debits minus credits, posted and pending (an exposure, e.g. open and lost disputes).
    pub fn debit_exposure(&self) -> Decimal {
        self.debits_pending + self.debits_posted - self.credits_posted
    }

    /// What may still be debited from a constrained account:
    /// `credits_posted - debits_posted - debits_pending` (TigerBeetle's
    /// `debits_must_not_exceed_credits`).
    pub fn available_to_debit(&self) -> Decimal {
        self.credits_posted - self.debits_posted - self.debits_pending
    }

    /// Adds another account's figures (to sum a trial balance).
    pub fn add(&mut self, other: &Balance) {
        self.debits_pending += other.debits_pending;
        self.debits_posted += other.debits_posted;
        self.credits_pending += other.credits_pending;
        self.credits_posted += other.credits_posted;
    }

    /// For a sum over every account of a currency: do debits equal credits, posted and
    /// pending? (Double entry says they must.)
    pub fn is_balanced(&self) -> bool {
        self.debits_posted == self.credits_posted && self.debits_pending == self.credits_pending
    }
}

/// One posting, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub debit: Account,
    pub credit: Account,
    pub amount: Money,
    pub phase: PostingPhase,
}

impl Transfer {
    pub fn new(debit: Account, credit: Account, amount: Money, phase: PostingPhase) -> Self {
        Transfer {
            debit,
            credit,
            amount,
            phase,
        }
    }

    pub fn to_posting(&self, merchant_id: &str) -> Posting {
        Posting {
            debit_account: self.debit.name(merchant_id),
            credit_account: self.credit.name(merchant_id),
            amount: self.amount.to_wire(),
            phase: self.phase,
        }
    }

    pub fn from_posting(posting: &Posting, merchant_id: &str) -> Result<Transfer, PostingError> {
        Ok(Transfer {
            debit: Account::parse(&posting.debit_account, merchant_id)?,
            credit: Account::parse(&posting.credit_account, merchant_id)?,
            amount: Money::parse(&posting.amount.amount, &posting.amount.currency)?,
            phase: posting.phase,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PostingError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("amount: {0}")]
    Money(#[from] MoneyError),
    #[error("{account} {currency}: {phase:?} of {amount} exceeds the pending {side} {pending}")]
    ExceedsPending {
        account: String,
        currency: Currency,
        phase: PostingPhase,
        side: &'static str,
        amount: Decimal,
        pending: Decimal,
    },
    #[error("{account} {currency}: debits would exceed posted credits by {by}")]
    Overdrawn {
        account: String,
        currency: Currency,
        by: Decimal,
    },
    #[error("debit and credit account are the same: {0}")]
    SameAccount(String),
}

/// Every account balance one merchant's events moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    accounts: HashMap<(Account, Currency), Balance>,
}

impl Balances {
    /// Balances as they were saved (a snapshot).
    pub fn from_map(accounts: HashMap<(Account, Currency), Balance>) -> Self {
        Balances { accounts }
    }

    pub fn get(&self, account: &Account, currency: Currency) -> Balance {
        self.accounts
            .get(&(account.clone(), currency))
            .copied()
            .unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(Account, Currency), &Balance)> {
        self.accounts.iter()
    }

    /// Whether `account` must never have debits above its posted credits.
    pub fn is_constrained(account: &Account) -> bool {
        matches!(account, Account::MerchantPayable)
    }

    /// Applies transfers all-or-nothing: on an error nothing has changed.
    pub fn apply(&mut self, transfers: &[Transfer]) -> Result<(), PostingError> {
        let mut next = HashMap::with_capacity(transfers.len() * 2);
        for t in transfers {
            if t.debit == t.credit {
                return Err(PostingError::SameAccount(t.debit.to_string()));
            }
            let currency = t.amount.currency();
            let amount = t.amount.amount();
            for (account, is_debit) in [(&t.debit, true), (&t.credit, false)] {
                let key = (account.clone(), currency);
                let balance = next
                    .entry(key.clone())
                    .or_insert_with(|| self.accounts.get(&key).copied().unwrap_or_default());
                move_balance(balance, is_debit, t.phase, amount).map_err(|(side, pending)| {
                    PostingError::ExceedsPending {
                        account: account.to_string(),
                        currency,
                        phase: t.phase,
                        side,
                        amount,
                        pending,
                    }
                })?;
            }
        }
        for ((account, currency), balance) in &next {
            if Balances::is_constrained(account) && balance.available_to_debit() < Decimal::ZERO {
                return Err(PostingError::Overdrawn {
                    account: account.to_string(),
                    currency: *currency,
                    by: -balance.available_to_debit(),
                });
            }
        }
        self.accounts.extend(next);
        Ok(())
    }
}

/// Moves one side of one account. Err: (side, pending) when more than is pending would be
/// posted or voided.
fn move_balance(
    b: &mut Balance,
    is_debit: bool,
    phase: PostingPhase,
    amount: Decimal,
) -> Result<(), (&'static str, Decimal)> {
    let (pending, posted, side) = if is_debit {
        (&mut b.debits_pending, &mut b.debits_posted, "debits")
    } else {
        (&mut b.credits_pending, &mut b.credits_posted, "credits")
    };
    match phase {
        PostingPhase::Pending => *pending += amount,
        PostingPhase::Posted => *posted += amount,
        PostingPhase::PostPending | PostingPhase::VoidPending => {
            if *pending < amount {
                return Err((side, *pending));
            }
            *pending -= amount;
            if phase == PostingPhase::PostPending {
                *posted += amount;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::Processor;

    fn gbp(s: &str) -> Money {
        Money::parse(s, "GBP").unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn two_phase_hold_capture_and_release_move_exact_amounts() {
        let clearing = Account::ProcessorClearing(Processor::Stripe);
        let payable = Account::MerchantPayable;
        let gbp_c = Currency::from_code("GBP").unwrap();
        let t = |amount: &str, phase| {
            Transfer::new(clearing.clone(), payable.clone(), gbp(amount), phase)
        };
        let mut b = Balances::default();
        b.apply(&[t("100.00", PostingPhase::Pending)]).unwrap();
        b.apply(&[t("30.25", PostingPhase::PostPending)]).unwrap();
        b.apply(&[t("69.75", PostingPhase::VoidPending)]).unwrap();
        let c = b.get(&clearing, gbp_c);
        assert_eq!(
            (
                c.debits_pending,
                c.debits_posted,
                c.credits_pending,
                c.credits_posted
            ),
            (dec("0.00"), dec("30.25"), Decimal::ZERO, Decimal::ZERO)
        );
        let p = b.get(&payable, gbp_c);
        assert_eq!(p.credits_posted, dec("30.25"));
        assert_eq!(p.credits_pending, dec("0.00"));
        // Nothing is pending any more: posting one more penny is refused and changes nothing.
        let before = b.clone();
        assert!(matches!(
            b.apply(&[t("0.01", PostingPhase::PostPending)]),
            Err(PostingError::ExceedsPending { .. })
        ));
        assert_eq!(b, before);
    }

    #[test]
    fn the_payable_account_cannot_be_overdrawn() {
        let payable = Account::MerchantPayable;
        let cash = Account::Cash("bank-1".into());
        let clearing = Account::ProcessorClearing(Processor::Square);
        let mut b = Balances::default();
        b.apply(&[Transfer::new(
            clearing,
            payable.clone(),
            gbp("10.00"),
            PostingPhase::Posted,
        )])
        .unwrap();
        let payout =
            |s: &str| Transfer::new(payable.clone(), cash.clone(), gbp(s), PostingPhase::Posted);
        assert!(matches!(
            b.apply(&[payout("10.01")]),
            Err(PostingError::Overdrawn { .. })
        ));
        b.apply(&[payout("10.00")]).unwrap();
        let gbp_c = Currency::from_code("GBP").unwrap();
        assert_eq!(b.get(&payable, gbp_c).available_to_debit(), dec("0.00"));
        // Unconstrained accounts may go below zero (cash paid out before settlement arrives).
        assert_eq!(b.get(&cash, gbp_c).credits_posted, dec("10.00"));
    }
}
