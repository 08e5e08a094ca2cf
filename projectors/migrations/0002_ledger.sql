-- payledger read model, schema v2: the payment lifecycle and the double-entry ledger.
-- Rebuildable from payments.events at any time, like v1.

-- ---------------------------------------------------------------------------------------
-- payments: the lifecycle's amounts. Every existing row is an authorization request (the
-- only event v1 projected), which is what the defaults below describe.
-- ---------------------------------------------------------------------------------------
ALTER TABLE payments
    ADD COLUMN authorization_status text    NOT NULL DEFAULT 'requested'
        CHECK (authorization_status IN ('requested', 'unknown', 'declined', 'failed', 'approved')),
    ADD COLUMN authorized_amount    numeric CHECK (authorized_amount > 0),
    ADD COLUMN captured_amount      numeric NOT NULL DEFAULT 0 CHECK (captured_amount >= 0),
    ADD COLUMN released_amount      numeric NOT NULL DEFAULT 0 CHECK (released_amount >= 0),
    ADD COLUMN refunded_amount      numeric NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    ADD COLUMN settled_amount       numeric NOT NULL DEFAULT 0 CHECK (settled_amount >= 0),
    ADD COLUMN fee_amount           numeric NOT NULL DEFAULT 0 CHECK (fee_amount >= 0),
    ADD COLUMN disputed_amount      numeric NOT NULL DEFAULT 0 CHECK (disputed_amount >= 0),
    ADD COLUMN open_disputes        integer NOT NULL DEFAULT 0 CHECK (open_disputes >= 0),
    ADD COLUMN processor_reference  text,
    ADD COLUMN expires_at           timestamptz,
    ADD COLUMN decline_code         text,
    ADD COLUMN error_code           text;

-- status was written by the projector; it is now derived from the columns above, by the same
-- rules as the ledger's Payment::status_label, so it can never disagree with them.
ALTER TABLE payments DROP COLUMN status;
ALTER TABLE payments
    ADD COLUMN status text NOT NULL GENERATED ALWAYS AS (
        CASE authorization_status
            WHEN 'requested' THEN 'authorization_requested'
            WHEN 'unknown'   THEN 'authorization_unknown'
            WHEN 'declined'  THEN 'declined'
            WHEN 'failed'    THEN 'failed'
            ELSE CASE
                WHEN open_disputes > 0 THEN 'disputed'
                WHEN captured_amount = 0 THEN
                    CASE WHEN coalesce(authorized_amount, 0) - released_amount = 0
                         THEN 'voided' ELSE 'authorized' END
                WHEN refunded_amount = captured_amount THEN 'refunded'
                WHEN settled_amount > 0 THEN 'settled'
                ELSE 'captured'
            END
        END
    ) STORED,
    ADD COLUMN held_amount numeric NOT NULL GENERATED ALWAYS AS (
        coalesce(authorized_amount, 0) - captured_amount - released_amount
    ) STORED;

CREATE INDEX payments_by_status ON payments (merchant_id, status);

COMMENT ON COLUMN payments.status IS
    'Derived (generated) from the columns below, as the ledger does: authorization_requested, '
    'authorization_unknown, declined, failed; once approved: disputed (a dispute is open), '
    'voided (released with nothing captured), authorized (still held, nothing captured), '
    'refunded (refunded_amount = captured_amount > 0), settled (any settlement), captured.';
COMMENT ON COLUMN payments.authorization_status IS
    'The processor''s answer: requested (awaiting it), unknown (timed out; only a status result '
    'resolves it), declined, failed (the call failed definitively), approved (a hold was placed).';
COMMENT ON COLUMN payments.authorized_amount IS
    'The amount held when the processor approved (equals amount); NULL until approved.';
COMMENT ON COLUMN payments.captured_amount IS 'Sum of all captures (partial captures add up).';
COMMENT ON COLUMN payments.released_amount IS
    'What a void (requested, or on expiry of the authorization) released from the hold.';
COMMENT ON COLUMN payments.held_amount IS
    'What the hold still holds: authorized_amount - captured_amount - released_amount.';
COMMENT ON COLUMN payments.refunded_amount IS 'Sum of all refunds (never more than captured).';
COMMENT ON COLUMN payments.settled_amount IS
    'Sum of what the processor settled (gross, before its fee).';
COMMENT ON COLUMN payments.fee_amount IS 'Sum of the processor fees taken from settlements.';
COMMENT ON COLUMN payments.disputed_amount IS
    'Chargebacks open or lost (won disputes are not counted): money the merchant gave back or may.';
COMMENT ON COLUMN payments.open_disputes IS 'Number of disputes awaiting an outcome.';
COMMENT ON COLUMN payments.processor_reference IS 'The processor''s id for the authorization, if it gave one.';
COMMENT ON COLUMN payments.expires_at IS 'When an uncaptured hold is voided automatically.';
COMMENT ON COLUMN payments.decline_code IS 'The processor''s decline code, when declined.';
COMMENT ON COLUMN payments.error_code IS 'Why the authorization failed, when failed.';
COMMENT ON COLUMN payments.payment_id IS 'The payment''s id, chosen by the merchant''s authorize command.';
COMMENT ON COLUMN payments.merchant_id IS 'The merchant the payment belongs to.';
COMMENT ON COLUMN payments.processor IS 'The processor asked to authorize (stripe, square, ...).';
COMMENT ON COLUMN payments.idempotency_key IS 'The idempotency key of the authorize command.';
COMMENT ON COLUMN payments.currency IS 'ISO 4217 code of every amount of the payment.';
COMMENT ON COLUMN payments.last_merchant_sequence IS
    'The merchant_sequence of the last event applied: older or equal events (replays, '
    'duplicates) leave the row alone.';
COMMENT ON COLUMN payments.last_event_id IS 'The last event applied to this row.';
COMMENT ON COLUMN payments.created_at IS 'When the authorization was requested.';
COMMENT ON COLUMN payments.updated_at IS 'When the last event applied to this row occurred.';

-- ---------------------------------------------------------------------------------------
-- ledger_entries: every posting of every event, append-only.
-- ---------------------------------------------------------------------------------------
CREATE TABLE ledger_entries (
    event_id          uuid        NOT NULL,
    posting_index     integer     NOT NULL CHECK (posting_index >= 0),
    merchant_id       text        NOT NULL,
    payment_id        uuid,
    event_type        text        NOT NULL,
    debit_account     text        NOT NULL,
    credit_account    text        NOT NULL,
    amount            numeric     NOT NULL CHECK (amount > 0),
    currency          char(3)     NOT NULL,
    phase             text        NOT NULL
        CHECK (phase IN ('pending', 'post_pending', 'void_pending', 'posted')),
    occurred_at       timestamptz NOT NULL,
    merchant_sequence bigint      NOT NULL,
    PRIMARY KEY (event_id, posting_index)
);
CREATE INDEX ledger_entries_by_payment ON ledger_entries (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX ledger_entries_by_merchant ON ledger_entries (merchant_id, merchant_sequence);
CREATE INDEX ledger_entries_by_debit ON ledger_entries (debit_account, currency);
CREATE INDEX ledger_entries_by_credit ON ledger_entries (credit_account, currency);

-- Entries are facts: rows are inserted, never changed. (TRUNCATE, for a rebuild, still works.)
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

COMMENT ON TABLE ledger_entries IS
    'The double-entry ledger: one row per posting of every event on payments.events (append-only). '
    'Each row moves amount from credit_account to debit_account, so per currency debits equal credits.';
COMMENT ON COLUMN ledger_entries.event_id IS 'The event that made the posting.';
COMMENT ON COLUMN ledger_entries.posting_index IS 'Position of the posting within its event (0, 1, ...).';
COMMENT ON COLUMN ledger_entries.merchant_id IS 'The merchant whose event made the posting.';
COMMENT ON COLUMN ledger_entries.payment_id IS 'The payment, for payment events; NULL for payouts.';
COMMENT ON COLUMN ledger_entries.event_type IS
    'PaymentAuthorized, PaymentCaptured, PaymentVoided, PaymentRefunded, PaymentSettled, '
    'DisputeOpened, DisputeClosed or PayoutSent.';
COMMENT ON COLUMN ledger_entries.debit_account IS
    'merchant:<id>:payable, merchant:<id>:disputes, processor:<name>:clearing, platform:fees or cash:<bank>.';
COMMENT ON COLUMN ledger_entries.credit_account IS 'Same account names as debit_account.';
COMMENT ON COLUMN ledger_entries.amount IS
    'Exact amount in major units, with the currency''s number of decimals (JPY 0, GBP 2, BHD 3). Never summed across currencies.';
COMMENT ON COLUMN ledger_entries.phase IS
    'pending opens (part of) a hold; post_pending moves part of a hold to posted; void_pending '
    'releases part of a hold; posted is a single-phase transfer.';
COMMENT ON COLUMN ledger_entries.currency IS 'ISO 4217 code of amount.';
COMMENT ON COLUMN ledger_entries.occurred_at IS 'When the event occurred.';
COMMENT ON COLUMN ledger_entries.merchant_sequence IS 'The event''s place in its merchant''s history.';

-- ---------------------------------------------------------------------------------------
-- account_balances: computed from ledger_entries on every read, so it cannot drift.
-- ---------------------------------------------------------------------------------------
CREATE VIEW account_balances AS
SELECT leg.account,
       e.currency,
       sum(CASE WHEN leg.side = 'debit' THEN
               CASE e.phase WHEN 'pending' THEN e.amount
                            WHEN 'post_pending' THEN -e.amount
                            WHEN 'void_pending' THEN -e.amount
                            ELSE 0 END
           ELSE 0 END) AS debits_pending,
       sum(CASE WHEN leg.side = 'debit' AND e.phase IN ('post_pending', 'posted')
                THEN e.amount ELSE 0 END) AS debits_posted,
       sum(CASE WHEN leg.side = 'credit' THEN
               CASE e.phase WHEN 'pending' THEN e.amount
                            WHEN 'post_pending' THEN -e.amount
                            WHEN 'void_pending' THEN -e.amount
                            ELSE 0 END
           ELSE 0 END) AS credits_pending,
       sum(CASE WHEN leg.side = 'credit' AND e.phase IN ('post_pending', 'posted')
                THEN e.amount ELSE 0 END) AS credits_posted
FROM ledger_entries AS e
CROSS JOIN LATERAL (VALUES ('debit', e.debit_account), ('credit', e.credit_account))
    AS leg(side, account)
GROUP BY leg.account, e.currency;

COMMENT ON VIEW account_balances IS
    'Per account and currency, from ledger_entries (TigerBeetle''s four balances). '
    'What the platform owes a merchant: credits_posted - debits_posted of merchant:<id>:payable.';
COMMENT ON COLUMN account_balances.account IS 'An account name, as in ledger_entries.debit_account.';
COMMENT ON COLUMN account_balances.currency IS 'ISO 4217 code: each row is one currency.';
COMMENT ON COLUMN account_balances.debits_pending IS
    'Held, not yet posted: pending minus post_pending minus void_pending debits.';
COMMENT ON COLUMN account_balances.debits_posted IS 'post_pending plus posted debits.';
COMMENT ON COLUMN account_balances.credits_pending IS
    'Held, not yet posted: pending minus post_pending minus void_pending credits.';
COMMENT ON COLUMN account_balances.credits_posted IS 'post_pending plus posted credits.';

-- ---------------------------------------------------------------------------------------
-- trial_balance: the one-query check that double entry holds.
-- ---------------------------------------------------------------------------------------
CREATE VIEW trial_balance AS
SELECT currency,
       sum(debits_posted)   AS debits_posted,
       sum(credits_posted)  AS credits_posted,
       sum(debits_pending)  AS debits_pending,
       sum(credits_pending) AS credits_pending,
       sum(debits_posted) = sum(credits_posted)
           AND sum(debits_pending) = sum(credits_pending) AS balanced
FROM account_balances
GROUP BY currency;

COMMENT ON VIEW trial_balance IS
    'Per currency, all accounts'' debits against all credits, posted and pending. balanced must '
    'be true on every row; a false row means the ledger or the projection is broken.';
COMMENT ON COLUMN trial_balance.currency IS 'ISO 4217 code: each row is one currency.';
COMMENT ON COLUMN trial_balance.debits_posted IS 'All accounts'' posted debits.';
COMMENT ON COLUMN trial_balance.credits_posted IS 'All accounts'' posted credits.';
COMMENT ON COLUMN trial_balance.debits_pending IS 'All accounts'' pending (held) debits.';
COMMENT ON COLUMN trial_balance.credits_pending IS 'All accounts'' pending (held) credits.';
COMMENT ON COLUMN trial_balance.balanced IS 'debits_posted = credits_posted and debits_pending = credits_pending.';

-- ---------------------------------------------------------------------------------------
-- payment_lifecycle_daily: money moved per day (UTC), merchant and currency.
-- ---------------------------------------------------------------------------------------
CREATE VIEW payment_lifecycle_daily AS
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       merchant_id,
       currency,
       coalesce(sum(amount) FILTER (WHERE event_type = 'PaymentCaptured'
                                      AND phase IN ('post_pending', 'posted')), 0) AS captured,
       coalesce(sum(amount) FILTER (WHERE event_type = 'PaymentRefunded'), 0) AS refunded,
       coalesce(sum(amount) FILTER (WHERE event_type = 'PaymentSettled'), 0) AS settled,
       coalesce(sum(amount) FILTER (WHERE event_type = 'PaymentSettled'
                                      AND debit_account = 'platform:fees'), 0) AS fees
FROM ledger_entries
WHERE event_type IN ('PaymentCaptured', 'PaymentRefunded', 'PaymentSettled')
GROUP BY 1, 2, 3;

COMMENT ON VIEW payment_lifecycle_daily IS
    'Captured, refunded and settled money per day (UTC), merchant and currency, from ledger_entries. '
    'Never add amounts of different currencies.';
COMMENT ON COLUMN payment_lifecycle_daily.day IS 'The day (UTC) the money moved.';
COMMENT ON COLUMN payment_lifecycle_daily.merchant_id IS 'The merchant.';
COMMENT ON COLUMN payment_lifecycle_daily.currency IS 'ISO 4217 code: each row is one currency.';
COMMENT ON COLUMN payment_lifecycle_daily.captured IS 'Captures of the day.';
COMMENT ON COLUMN payment_lifecycle_daily.refunded IS 'Refunds of the day.';
COMMENT ON COLUMN payment_lifecycle_daily.settled IS 'Settled by processors that day, gross (fees included).';
COMMENT ON COLUMN payment_lifecycle_daily.fees IS 'Processor fees taken from that day''s settlements.';

COMMENT ON VIEW daily_authorization_volume IS
    'Authorization requests per day (of created_at, UTC), merchant, currency and processor, '
    'whatever their outcome (see payments.status). Never sum across currencies.';
COMMENT ON COLUMN daily_authorization_volume.day IS 'The day (UTC) the authorizations were requested.';
COMMENT ON COLUMN daily_authorization_volume.merchant_id IS 'The merchant.';
COMMENT ON COLUMN daily_authorization_volume.currency IS 'ISO 4217 code: each row is one currency.';
COMMENT ON COLUMN daily_authorization_volume.processor IS 'The processor asked.';
COMMENT ON COLUMN daily_authorization_volume.payments IS 'Number of authorization requests.';
COMMENT ON COLUMN daily_authorization_volume.amount IS 'Sum of the requested amounts.';
