use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE accounts (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    ingest_rate_limit   integer NOT NULL DEFAULT 10000 CHECK (ingest_rate_limit > 0),
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              text PRIMARY KEY,
    account_id      text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email           text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_account_idx ON users (account_id);

CREATE TABLE sessions (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE api_keys (
    id              text PRIMARY KEY,
    account_id      text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key_hash        text NOT NULL UNIQUE,
    key_prefix      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

CREATE TABLE endpoints (
    id                          text PRIMARY KEY,
    account_id                  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    url                         text NOT NULL CHECK (length(url) <= 2048),
    description                 text NOT NULL DEFAULT '',
    enabled                     boolean NOT NULL DEFAULT true,
    status                      text NOT NULL DEFAULT 'healthy'
                                CHECK (status IN ('healthy', 'failing', 'disabled')),
    disabled_reason             text,
    consecutive_failures        integer NOT NULL DEFAULT 0,
    rate_limit                  integer NOT NULL DEFAULT 100 CHECK (rate_limit BETWEEN 1 AND 100),
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_account_idx ON endpoints (account_id, created_at);

CREATE TABLE endpoint_event_types (
    endpoint_id text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_type  text NOT NULL,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (endpoint_id, event_type)
);
-- Fan-out: the endpoints of one account subscribed to one type.
CREATE INDEX endpoint_event_types_fanout_idx ON endpoint_event_types (account_id, event_type);

CREATE TABLE events (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    event_type  text NOT NULL,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_account_created_idx ON events (account_id, created_at);
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE idempotency_keys (
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key         text NOT NULL,
    event_ids   jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE deliveries (
    id              text PRIMARY KEY,
    account_id      text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    event_id        text NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id     text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt_count   integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- SPEC §6: one delivery per (event, endpoint), created exactly once.
    UNIQUE (event_id, endpoint_id)
);
-- Claiming due work: only pending rows are indexed, so the index stays small.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log of one endpoint, newest first, optionally by status.
CREATE INDEX deliveries_endpoint_log_idx ON deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX deliveries_endpoint_status_idx ON deliveries (endpoint_id, status, created_at DESC);
-- Retention pruning of finished deliveries by age.
CREATE INDEX deliveries_created_idx ON deliveries (created_at);

CREATE TABLE attempts (
    id                  text PRIMARY KEY,
    account_id          text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    delivery_id         text NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    endpoint_id         text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_type          text NOT NULL,
    attempt_number      integer NOT NULL,
    attempted_at        timestamptz NOT NULL DEFAULT now(),
    status_code         integer,
    response_time_ms    integer NOT NULL,
    success             boolean NOT NULL,
    error               text,
    request_headers     jsonb NOT NULL,
    request_body        text NOT NULL,
    response_headers    jsonb,
    response_body       text
);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, attempt_number);
CREATE INDEX attempts_endpoint_time_idx ON attempts (endpoint_id, attempted_at DESC);
CREATE INDEX attempts_attempted_at_idx ON attempts (attempted_at);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS attempts, deliveries, idempotency_keys, events, endpoint_event_types,
    endpoints, api_keys, sessions, users, accounts;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, DOWN).await
    }
}
