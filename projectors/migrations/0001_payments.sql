-- payledger read model, schema v1. Rebuildable from payments.events at any time.

-- Where each projection has read up to: stored in the same transaction as the rows it
-- produced, so a crash never applies a batch twice and never skips one.
CREATE TABLE projector_offsets (
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- One row per payment: its current state.
CREATE TABLE payments (
    payment_id             uuid        PRIMARY KEY,
    merchant_id            text        NOT NULL,
    status                 text        NOT NULL,
    amount                 numeric     NOT NULL CHECK (amount > 0),
    currency               char(3)     NOT NULL,
    processor              text        NOT NULL,
    idempotency_key        text        NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    last_event_id          uuid        NOT NULL,
    last_merchant_sequence bigint      NOT NULL
);
CREATE INDEX payments_by_merchant ON payments (merchant_id, created_at);

COMMENT ON TABLE payments IS 'Current state of every payment (one row each), projected from payments.events.';
COMMENT ON COLUMN payments.amount IS 'Exact amount in major units, with the currency''s number of decimals (JPY 0, GBP 2, BHD 3).';
COMMENT ON COLUMN payments.status IS 'authorization_requested, then (later) authorized, declined, captured, settled, voided, refunded, disputed.';

-- Every refused command, so senders and analysts can see why.
CREATE TABLE command_rejections (
    event_id         uuid        PRIMARY KEY,
    command_id       uuid        NOT NULL,
    merchant_id      text        NOT NULL,
    idempotency_key  text        NOT NULL,
    payment_id       uuid,
    reason_code      text        NOT NULL,
    detail           text        NOT NULL,
    occurred_at      timestamptz NOT NULL
);
CREATE INDEX command_rejections_by_merchant ON command_rejections (merchant_id, occurred_at);
CREATE INDEX command_rejections_by_key ON command_rejections (merchant_id, idempotency_key);

COMMENT ON TABLE command_rejections IS 'Commands the ledger refused, with a stable reason_code.';

-- Analysts: authorization volume per day, merchant, currency and processor.
-- Never sum across currencies: each row is one currency.
CREATE VIEW daily_authorization_volume AS
SELECT date_trunc('day', created_at AT TIME ZONE 'UTC')::date AS day,
       merchant_id,
       currency,
       processor,
       count(*)    AS payments,
       sum(amount) AS amount
FROM payments
GROUP BY 1, 2, 3, 4;
