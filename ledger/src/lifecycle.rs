//! The payment rules: what each command or gateway result may do to a merchant's state, and
//! the postings it makes. Pure; [`crate::decide`] wraps these in envelopes and idempotency.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use schemas::{
    AuthorizationOutcome, AuthorizationResult, AuthorizePayment, CapturePayment, CommandBody,
    DisputeClosed, DisputeDecision, DisputeNotice, DisputeOpened, DisputeOutcome, EventBody,
    GatewayResult, PaymentAuthorizationFailed, PaymentAuthorizationRequested,
    PaymentAuthorizationUnknown, PaymentAuthorized, PaymentCaptured, PaymentDeclined,
    PaymentRefunded, PaymentSettled, PaymentVoided, PayoutSent, PostingPhase, RefundPayment,
    RequestPayout, ResultBody, SettlementReport, VoidPayment, VoidReason, WireMoney,
};

use crate::account::{Account, valid_bank_account};
use crate::balance::Transfer;
use crate::money::{Currency, Money};
use crate::processor::Processor;
use crate::rejection::Rejection;
use crate::state::{
    AuthorizationStatus, DisputeStatus, MAX_DISPUTES_PER_PAYMENT, MerchantState, Payment,
};
use crate::token::check_token;

/// How long an approved authorization holds when the processor does not say.
pub const DEFAULT_AUTHORIZATION_VALIDITY: Duration = Duration::days(7);

/// Longest processor text (decline detail, error message) kept in an event.
const MAX_DETAIL_CHARS: usize = 500;

/// The event a command causes, or why it is refused.
pub(crate) fn on_command(
    state: &MerchantState,
    merchant_id: &str,
    body: &CommandBody,
    now: DateTime<Utc>,
) -> Result<EventBody, Rejection> {
    match body {
        CommandBody::AuthorizePayment(a) => authorize(state, a),
        CommandBody::CapturePayment(c) => capture(state, merchant_id, c, now),
        CommandBody::VoidPayment(v) => void(state, merchant_id, v),
        CommandBody::RefundPayment(r) => refund(state, merchant_id, r),
        CommandBody::RequestPayout(p) => payout(state, merchant_id, p),
    }
}

/// The event a gateway result causes (`None`: it changes nothing, e.g. a second report of
/// an outcome already recorded), or why it is refused.
pub(crate) fn on_result(
    state: &MerchantState,
    merchant_id: &str,
    result: &GatewayResult,
    now: DateTime<Utc>,
) -> Result<Option<EventBody>, Rejection> {
    let payment = payment(state, result.payment_id)?;
    if Processor::parse(&result.processor) != Some(payment.processor) {
        return Err(Rejection::ProcessorMismatch);
    }
    match &result.body {
        ResultBody::Authorization(a) => authorization_result(payment, merchant_id, a, now),
        ResultBody::Settlement(s) => settle(payment, merchant_id, s).map(Some),
        ResultBody::DisputeOpened(d) => open_dispute(payment, merchant_id, d).map(Some),
        ResultBody::DisputeClosed(d) => close_dispute(payment, merchant_id, d).map(Some),
    }
}

/// Approved authorizations whose hold is past `expires_at`, as the voids that release them.
pub(crate) fn expired(
    state: &MerchantState,
    merchant_id: &str,
    now: DateTime<Utc>,
) -> Vec<(uuid::Uuid, EventBody)> {
    let mut due: Vec<&Payment> = state
        .payments
        .values()
        .filter(|p| {
            p.authorization == AuthorizationStatus::Approved
                && !p.held.is_zero()
                && p.expires_at.is_some_and(|at| at <= now)
        })
        .collect();
    due.sort_by_key(|p| p.id);
    due.into_iter()
        .map(|p| (p.id, release(p, merchant_id, VoidReason::Expired)))
        .collect()
}

fn authorize(state: &MerchantState, a: &AuthorizePayment) -> Result<EventBody, Rejection> {
    let money =
        Money::parse(&a.amount.amount, &a.amount.currency).map_err(Rejection::InvalidMoney)?;
    if Processor::parse(&a.processor).is_none() {
        return Err(Rejection::UnknownProcessor(a.processor.clone()));
    }
    check_token(&a.payment_token)?;
    if state.payments.contains_key(&a.payment_id) {
        return Err(Rejection::DuplicatePayment);
    }
    Ok(EventBody::PaymentAuthorizationRequested(
        PaymentAuthorizationRequested {
            payment_id: a.payment_id,
            amount: money.to_wire(),
            processor: a.processor.clone(),
            payment_token: a.payment_token.clone(),
        },
    ))
}

fn capture(
    state: &MerchantState,
    merchant_id: &str,
    c: &CapturePayment,
    now: DateTime<Utc>,
) -> Result<EventBody, Rejection> {
    let p = approved(payment(state, c.payment_id)?)?;
    let amount = money_in(&c.amount, p.currency)?;
    if p.expires_at.is_some_and(|at| at <= now) {
        return Err(Rejection::AuthorizationExpired);
    }
    if amount.amount() > p.held {
        return Err(Rejection::CaptureExceedsHold { held: p.held });
    }
    let hold = hold_transfer(p, amount, PostingPhase::PostPending);
    Ok(EventBody::PaymentCaptured(PaymentCaptured {
        payment_id: p.id,
        amount: amount.to_wire(),
        postings: vec![hold.to_posting(merchant_id)],
    }))
}

fn void(state: &MerchantState, merchant_id: &str, v: &VoidPayment) -> Result<EventBody, Rejection> {
    let p = approved(payment(state, v.payment_id)?)?;
    if p.held.is_zero() {
        return Err(Rejection::NothingToVoid);
    }
    Ok(release(p, merchant_id, VoidReason::Requested))
}

/// Releases all that `p` still holds.
fn release(p: &Payment, merchant_id: &str, reason: VoidReason) -> EventBody {
    let held = Money::from_decimal(p.held, p.currency).expect("callers check held > 0");
    EventBody::PaymentVoided(PaymentVoided {
        payment_id: p.id,
        released: held.to_wire(),
        reason,
        postings: vec![hold_transfer(p, held, PostingPhase::VoidPending).to_posting(merchant_id)],
    })
}

fn refund(
    state: &MerchantState,
    merchant_id: &str,
    r: &RefundPayment,
) -> Result<EventBody, Rejection> {
    let p = approved(payment(state, r.payment_id)?)?;
    let amount = money_in(&r.amount, p.currency)?;
    let refundable = p.refundable();
    if amount.amount() > refundable {
        return Err(Rejection::RefundExceedsCaptured { refundable });
    }
    // The money goes back out of what the platform owes the merchant: never overdraw it.
    let available = state
        .balances
        .get(&Account::MerchantPayable, p.currency)
        .available_to_debit();
    if amount.amount() > available {
        return Err(Rejection::InsufficientMerchantBalance { available });
    }
    let transfer = Transfer::new(
        Account::MerchantPayable,
        Account::ProcessorClearing(p.processor),
        amount,
        PostingPhase::Posted,
    );
    Ok(EventBody::PaymentRefunded(PaymentRefunded {
        payment_id: p.id,
        amount: amount.to_wire(),
        postings: vec![transfer.to_posting(merchant_id)],
    }))
}

/// What a payout may take from the merchant's payable balance in `currency`: the balance,
/// less what the merchant owes for open and lost disputes.
pub fn payout_available(state: &MerchantState, currency: Currency) -> Decimal {
    let payable = state.balances.get(&Account::MerchantPayable, currency);
    let disputes = state.balances.get(&Account::MerchantDisputes, currency);
    payable.available_to_debit() - disputes.debit_exposure().max(Decimal::ZERO)
}

fn payout(
    state: &MerchantState,
    merchant_id: &str,
    p: &RequestPayout,
) -> Result<EventBody, Rejection> {
    let amount =
        Money::parse(&p.amount.amount, &p.amount.currency).map_err(Rejection::InvalidMoney)?;
    if !valid_bank_account(&p.bank_account) {
        return Err(Rejection::InvalidBankAccount);
    }
    if state.payouts.contains(&p.payout_id) {
        return Err(Rejection::DuplicatePayout);
    }
    let available = payout_available(state, amount.currency());
    if amount.amount() > available {
        return Err(Rejection::InsufficientMerchantBalance { available });
    }
    let transfer = Transfer::new(
        Account::MerchantPayable,
        Account::Cash(p.bank_account.clone()),
        amount,
        PostingPhase::Posted,
    );
    Ok(EventBody::PayoutSent(PayoutSent {
        payout_id: p.payout_id,
        amount: amount.to_wire(),
        bank_account: p.bank_account.clone(),
        postings: vec![transfer.to_posting(merchant_id)],
    }))
}

fn authorization_result(
    p: &Payment,
    merchant_id: &str,
    a: &AuthorizationResult,
    now: DateTime<Utc>,
) -> Result<Option<EventBody>, Rejection> {
    use AuthorizationOutcome as O;
    use AuthorizationStatus as S;
    if let Some(code) = &a.code {
        reference("code", code)?;
    }
    if let Some(reference_id) = &a.processor_reference {
        reference("processor_reference", reference_id)?;
    }
    let detail: String = a.detail.chars().take(MAX_DETAIL_CHARS).collect();
    let body = match (p.authorization, a.outcome) {
        (S::Requested | S::Unknown, O::Approved) => {
            let amount =
                Money::from_decimal(p.amount, p.currency).expect("requested amounts are positive");
            EventBody::PaymentAuthorized(PaymentAuthorized {
                payment_id: p.id,
                amount: amount.to_wire(),
                processor_reference: a.processor_reference.clone(),
                expires_at: crate::decide::wire_time(
                    a.expires_at.unwrap_or(now + DEFAULT_AUTHORIZATION_VALIDITY),
                ),
                postings: vec![
                    hold_transfer(p, amount, PostingPhase::Pending).to_posting(merchant_id),
                ],
            })
        }
        (S::Requested | S::Unknown, O::Declined) => EventBody::PaymentDeclined(PaymentDeclined {
            payment_id: p.id,
            decline_code: a.code.clone().unwrap_or_else(|| "declined".to_owned()),
            detail,
        }),
        (S::Requested | S::Unknown, O::Failed) => {
            EventBody::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
                payment_id: p.id,
                error_code: a.code.clone().unwrap_or_else(|| "failed".to_owned()),
                detail,
            })
        }
        (S::Requested, O::Unknown) => {
            EventBody::PaymentAuthorizationUnknown(PaymentAuthorizationUnknown {
                payment_id: p.id,
                detail,
            })
        }
        // Still unknown, or a second report of the recorded outcome: nothing changes.
        (S::Unknown, O::Unknown)
        | (S::Approved, O::Approved)
        | (S::Declined, O::Declined)
        | (S::Failed, O::Failed) => return Ok(None),
        (recorded, _) => {
            return Err(Rejection::ConflictingResult {
                recorded: status_name(recorded),
            });
        }
    };
    Ok(Some(body))
}

fn settle(p: &Payment, merchant_id: &str, s: &SettlementReport) -> Result<EventBody, Rejection> {
    let p = approved(p)?;
    reference("settlement_id", &s.settlement_id)?;
    if !valid_bank_account(&s.bank_account) {
        return Err(Rejection::InvalidBankAccount);
    }
    let amount = money_in(&s.amount, p.currency)?;
    if s.fee.currency != p.currency.code() {
        return Err(Rejection::CurrencyMismatch {
            expected: p.currency.code(),
        });
    }
    let fee = Money::parse_fee(&s.fee.amount, &s.fee.currency).map_err(Rejection::InvalidMoney)?;
    let fee_amount = fee.map_or(Decimal::ZERO, |f| f.amount());
    if fee_amount > amount.amount() {
        return Err(Rejection::FeeExceedsAmount);
    }
    if p.settlements.contains(&s.settlement_id) {
        return Err(Rejection::DuplicateSettlement);
    }
    let unsettled = p.unsettled();
    if amount.amount() > unsettled {
        return Err(Rejection::SettlementExceedsCaptured { unsettled });
    }
    let clearing = Account::ProcessorClearing(p.processor);
    let mut postings = Vec::with_capacity(2);
    if let Some(net) = Money::from_decimal(amount.amount() - fee_amount, p.currency) {
        let cash = Account::Cash(s.bank_account.clone());
        postings.push(
            Transfer::new(cash, clearing.clone(), net, PostingPhase::Posted)
                .to_posting(merchant_id),
        );
    }
    if let Some(fee) = fee {
        postings.push(
            Transfer::new(Account::PlatformFees, clearing, fee, PostingPhase::Posted)
                .to_posting(merchant_id),
        );
    }
    Ok(EventBody::PaymentSettled(PaymentSettled {
        payment_id: p.id,
        settlement_id: s.settlement_id.clone(),
        amount: amount.to_wire(),
        fee: WireMoney {
            amount: fee.map_or_else(
                || p.currency.format(Decimal::ZERO),
                |f| f.canonical_amount(),
            ),
            currency: p.currency.code().to_owned(),
        },
        bank_account: s.bank_account.clone(),
        postings,
    }))
}

fn open_dispute(p: &Payment, merchant_id: &str, d: &DisputeNotice) -> Result<EventBody, Rejection> {
    let p = approved(p)?;
    reference("dispute_id", &d.dispute_id)?;
    let amount = money_in(&d.amount, p.currency)?;
    if p.disputes.iter().any(|x| x.id == d.dispute_id) {
        return Err(Rejection::DuplicateDispute);
    }
    if p.disputes.len() >= MAX_DISPUTES_PER_PAYMENT {
        return Err(Rejection::TooManyDisputes);
    }
    let disputable = p.refundable();
    if amount.amount() > disputable {
        return Err(Rejection::DisputeExceedsCaptured { disputable });
    }
    let reason: String = d.reason.chars().take(MAX_DETAIL_CHARS).collect();
    Ok(EventBody::DisputeOpened(DisputeOpened {
        payment_id: p.id,
        dispute_id: d.dispute_id.clone(),
        amount: amount.to_wire(),
        reason,
        postings: vec![dispute_transfer(p, amount, PostingPhase::Pending).to_posting(merchant_id)],
    }))
}

fn close_dispute(
    p: &Payment,
    merchant_id: &str,
    d: &DisputeDecision,
) -> Result<EventBody, Rejection> {
    let dispute = p
        .disputes
        .iter()
        .find(|x| x.id == d.dispute_id && x.status == DisputeStatus::Open)
        .ok_or(Rejection::DisputeNotOpen)?;
    let amount =
        Money::from_decimal(dispute.amount, p.currency).expect("dispute amounts are positive");
    let phase = match d.outcome {
        DisputeOutcome::Won => PostingPhase::VoidPending,
        DisputeOutcome::Lost => PostingPhase::PostPending,
    };
    Ok(EventBody::DisputeClosed(DisputeClosed {
        payment_id: p.id,
        dispute_id: dispute.id.clone(),
        outcome: d.outcome,
        amount: amount.to_wire(),
        postings: vec![dispute_transfer(p, amount, phase).to_posting(merchant_id)],
    }))
}

/// The authorization's hold: the processor will owe the platform, the platform will owe the
/// merchant.
fn hold_transfer(p: &Payment, amount: Money, phase: PostingPhase) -> Transfer {
    Transfer::new(
        Account::ProcessorClearing(p.processor),
        Account::MerchantPayable,
        amount,
        phase,
    )
}

/// A dispute: the processor takes the amount back out of clearing, and the merchant owes it
/// to the platform until the dispute is won.
fn dispute_transfer(p: &Payment, amount: Money, phase: PostingPhase) -> Transfer {
    Transfer::new(
        Account::MerchantDisputes,
        Account::ProcessorClearing(p.processor),
        amount,
        phase,
    )
}

fn payment(state: &MerchantState, id: uuid::Uuid) -> Result<&Payment, Rejection> {
    state.payments.get(&id).ok_or(Rejection::PaymentNotFound)
}

fn approved(p: &Payment) -> Result<&Payment, Rejection> {
    if p.authorization == AuthorizationStatus::Approved {
        Ok(p)
    } else {
        Err(Rejection::PaymentNotAuthorized(status_name(
            p.authorization,
        )))
    }
}

/// Parses an amount that must be in the payment's currency.
fn money_in(wire: &WireMoney, currency: Currency) -> Result<Money, Rejection> {
    let money = Money::parse(&wire.amount, &wire.currency).map_err(Rejection::InvalidMoney)?;
    if money.currency() != currency {
        return Err(Rejection::CurrencyMismatch {
            expected: currency.code(),
        });
    }
    Ok(money)
}

fn reference(field: &'static str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::InvalidReference(field));
    }
    Ok(())
}

fn status_name(status: AuthorizationStatus) -> &'static str {
    match status {
        AuthorizationStatus::Requested => "awaiting the processor",
        AuthorizationStatus::Unknown => "of unknown outcome",
        AuthorizationStatus::Declined => "declined",
        AuthorizationStatus::Failed => "failed",
        AuthorizationStatus::Approved => "approved",
    }
}
