//! The schema, as numbered migrations applied in order at start-up.
//!
//! `schema_version` holds one row per migration applied. [`MIGRATIONS`] is append-only:
//! a released migration is never edited; a change of schema is a new entry. On start-up the
//! engine takes an advisory lock (so that two nodes starting together do not both migrate),
//! refuses a database whose highest version is newer than [`MIGRATIONS`] knows (a newer
//! binary migrated it: running an older one against it could misread it), and applies the
//! missing migrations, each in its own transaction.

/// The migrations: (version, what it does, SQL). Versions start at 1 and have no gaps.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "the storage authority's tables", V1),
    (2, "the blocklist of compromised keys", V2),
    (3, "officers, and the actor of audit records", V3),
    (4, "municipal CRL partitions", V4),
    (5, "platform usage counters", V5),
    (6, "the status history of every certificate", V6),
    (7, "signed checkpoints of the audit chain", V7),
    (8, "CRL partition leases", V8),
    (9, "edges' OCSP signer requests", V9),
    (10, "CRLs per root generation", V10),
    (11, "the register's identity index", V11),
    (15, "the issuance log", V15),
];

/// The version this binary brings a database to.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Created before any migration; never changed by one.
pub const VERSION_TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

/// The key of the advisory lock held while migrating.
pub const MIGRATION_LOCK: i64 = 0x6A70_6B69_0001;

// Conventions: hierarchy is a smallint (0 signing, 1 auth: `Hierarchy::tag`); a CRL scope is an
// integer, the partition number for an end-entity partition and 65536 for the CA-level CRL
// (so that ordering by it gives partitions in number order, then the CA-level CRL); instants
// are bigint nanoseconds since the Unix epoch (exact: the records round-trip to the
// nanosecond), except the audit record's `at`, kept as the RFC 3339 text its hash covers, and
// the CRL entry's times, in seconds as the CRL says them. Records with nested parts
// (residents with their history, operators, service providers, consents, access entries)
// keep their full serde form in a jsonb `record` column beside the columns they are looked
// up or ordered by. Text keys that listings are ordered by are `COLLATE "C"` (byte order, as
// the other engines order them), whatever the database's default collation.
const V1: &str = r#"
CREATE TABLE certificates (
    hierarchy     smallint NOT NULL,
    serial        bytea    NOT NULL,
    kind          text     NOT NULL,
    holder        text,
    crl_partition integer,
    not_before_ns bigint   NOT NULL,
    not_after_ns  bigint   NOT NULL,
    der           bytea    NOT NULL,
    PRIMARY KEY (hierarchy, serial)
);
CREATE INDEX certificates_by_holder ON certificates (holder, hierarchy, serial) WHERE holder IS NOT NULL;

CREATE TABLE statuses (
    hierarchy     smallint NOT NULL,
    serial        bytea    NOT NULL,
    state         text     NOT NULL CHECK (state IN ('good', 'held', 'revoked')),
    reason        smallint,
    since_ns      bigint,
    invalidity_ns bigint,
    PRIMARY KEY (hierarchy, serial),
    FOREIGN KEY (hierarchy, serial) REFERENCES certificates
);

-- The CRL entries, by (hierarchy, CRL scope): what for_each_revoked streams.
CREATE TABLE revoked (
    hierarchy    smallint NOT NULL,
    crl_scope    integer  NOT NULL,
    serial       bytea    NOT NULL,
    reason       smallint NOT NULL,
    revoked_at   bigint   NOT NULL,
    invalidity   bigint,
    not_after    bigint   NOT NULL,
    PRIMARY KEY (hierarchy, crl_scope, serial),
    FOREIGN KEY (hierarchy, serial) REFERENCES certificates
);

-- Append-only: one row per status change, written by set_status in the same transaction.
-- seq comes from a sequence, so it grows with commit order only approximately (a follower
-- must allow for a gap that fills in shortly after).
CREATE TABLE revocation_log (
    seq           bigserial PRIMARY KEY,
    hierarchy     smallint NOT NULL,
    serial        bytea    NOT NULL,
    state         text     NOT NULL,
    reason        smallint,
    since_ns      bigint,
    invalidity_ns bigint,
    logged_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE key_owners (
    fingerprint bytea    PRIMARY KEY,
    holder      text     NOT NULL,
    hierarchy   smallint NOT NULL
);

-- value is the counter minus 2^63 (the counter spans the whole u64 range; this keeps the
-- order, so GREATEST works on it): 0 is stored as -9223372036854775808.
CREATE TABLE serial_counters (
    hierarchy smallint PRIMARY KEY,
    value     bigint   NOT NULL
);

CREATE TABLE crl_dirty (
    hierarchy smallint NOT NULL,
    crl_scope integer  NOT NULL,
    PRIMARY KEY (hierarchy, crl_scope)
);

CREATE TABLE crl_state (
    hierarchy smallint NOT NULL,
    crl_scope integer  NOT NULL,
    state     bytea    NOT NULL,
    PRIMARY KEY (hierarchy, crl_scope)
);

CREATE TABLE residents (
    id      text   COLLATE "C" PRIMARY KEY,
    state   text   NOT NULL,
    version bigint NOT NULL,
    record  jsonb  NOT NULL
);

CREATE TABLE scheduled_events (
    at_ns    bigint NOT NULL,
    resident text   COLLATE "C" NOT NULL,
    kind     text   NOT NULL,
    PRIMARY KEY (at_ns, resident)
);

CREATE TABLE audit_records (
    seq     bigint PRIMARY KEY,
    at      text   NOT NULL,
    action  text   NOT NULL,
    subject text   NOT NULL,
    detail  text   NOT NULL,
    prev    text   NOT NULL,
    hash    text   NOT NULL
);

-- The chain's head: at most one row.
CREATE TABLE audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);

CREATE TABLE operators (
    id     text  COLLATE "C" PRIMARY KEY,
    name   text  NOT NULL,
    record jsonb NOT NULL
);
CREATE TABLE operator_names (
    name     text PRIMARY KEY,
    operator text NOT NULL
);
CREATE TABLE operator_keys (
    fingerprint text PRIMARY KEY,
    operator    text NOT NULL
);

CREATE TABLE service_providers (
    id     text  COLLATE "C" PRIMARY KEY,
    pf     text  NOT NULL,
    name   text  NOT NULL,
    record jsonb NOT NULL
);
CREATE TABLE service_provider_names (
    pf   text NOT NULL,
    name text NOT NULL,
    sp   text NOT NULL,
    PRIMARY KEY (pf, name)
);

CREATE TABLE consents (
    id     text  COLLATE "C" PRIMARY KEY,
    holder text  NOT NULL,
    sp     text  NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX consents_by_holder ON consents (holder, sp, id);
CREATE TABLE consent_nonces (
    sp      text NOT NULL,
    nonce   text NOT NULL,
    consent text NOT NULL,
    PRIMARY KEY (sp, nonce)
);

CREATE TABLE access_log (
    holder text   NOT NULL,
    at_ns  bigint NOT NULL,
    seq    bigint NOT NULL,
    record jsonb  NOT NULL,
    PRIMARY KEY (holder, at_ns, seq)
);

-- Every unit of work locks this (empty) table first: see the crate docs, "Isolation".
CREATE TABLE writer_lock ();
"#;

/// Version 2: public keys never to be certified again (revoked for keyCompromise), by the
/// SHA-256 of their SubjectPublicKeyInfo, for every holder.
const V2: &str = r#"
CREATE TABLE blocked_keys (
    fingerprint bytea PRIMARY KEY CHECK (octet_length(fingerprint) = 32)
);
"#;

/// Version 3: the CA's officers (record, unique name and client-key fingerprint), and audit
/// records of format 2 (`v`, `actor`; records of format 1 keep `v = 1` and no actor, as
/// `ca::audit` describes).
const V3: &str = r#"
CREATE TABLE officers (
    id     text  COLLATE "C" PRIMARY KEY,
    name   text  NOT NULL UNIQUE,
    key    text  NOT NULL UNIQUE,
    record jsonb NOT NULL
);

ALTER TABLE audit_records ADD COLUMN v integer NOT NULL DEFAULT 1;
ALTER TABLE audit_records ADD COLUMN actor text;
"#;

/// Version 4: municipal CRL partitions. A CRL scope becomes (crl_scope, crl_prefecture,
/// crl_municipality): serial partitions and the CA-level CRL keep their number and empty
/// names (every row written before stays as it was), a municipal partition is crl_scope
/// 65535 with its names — so that ordering by the three gives serial partitions, municipal
/// partitions by prefecture then municipality (byte order), then the CA-level CRL.
/// Certificates name their municipal partition in crl_prefecture/crl_municipality beside
/// crl_partition = 65535 (NULL for the other kinds).
const V4: &str = r#"
ALTER TABLE certificates
    ADD COLUMN crl_prefecture   text COLLATE "C",
    ADD COLUMN crl_municipality text COLLATE "C";

ALTER TABLE revoked
    ADD COLUMN crl_prefecture   text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN crl_municipality text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE revoked DROP CONSTRAINT revoked_pkey,
    ADD PRIMARY KEY (hierarchy, crl_scope, crl_prefecture, crl_municipality, serial);

ALTER TABLE crl_dirty
    ADD COLUMN crl_prefecture   text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN crl_municipality text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE crl_dirty DROP CONSTRAINT crl_dirty_pkey,
    ADD PRIMARY KEY (hierarchy, crl_scope, crl_prefecture, crl_municipality);

ALTER TABLE crl_state
    ADD COLUMN crl_prefecture   text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN crl_municipality text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE crl_state DROP CONSTRAINT crl_state_pkey,
    ADD PRIMARY KEY (hierarchy, crl_scope, crl_prefecture, crl_municipality);
"#;

/// Version 5: the platform API's usage counters (checks per month, PF, SP, endpoint and
/// certificate type), added to by each recorded call.
const V5: &str = r#"
CREATE TABLE usage_counts (
    month     text   COLLATE "C" NOT NULL,
    pf        text   COLLATE "C" NOT NULL,
    sp        text   COLLATE "C" NOT NULL,
    endpoint  text   COLLATE "C" NOT NULL,
    cert_type text   COLLATE "C" NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (month, pf, sp, endpoint, cert_type)
);
"#;

const V6: &str = r#"
-- Every change of a certificate's status at the authority's clock (issue #18), the record a
-- verification as of a past moment is judged from. Unlike revocation_log (a feed for edges,
-- stamped by the database's clock), it is keyed by the certificate and kept for ever.
CREATE TABLE status_history (
    hierarchy     smallint NOT NULL,
    serial        bytea    NOT NULL,
    at_ns         bigint   NOT NULL,
    state         text     NOT NULL,
    reason        smallint,
    since_ns      bigint,
    invalidity_ns bigint,
    PRIMARY KEY (hierarchy, serial, at_ns)
);
"#;

/// Version 7: signed checkpoints of the audit chain's head (`ca::checkpoint`), one per
/// sequence number, the checkpoint's full serde form in `record`.
const V7: &str = r#"
CREATE TABLE audit_checkpoints (
    seq    bigint PRIMARY KEY CHECK (seq >= 0),
    record jsonb  NOT NULL
);
"#;

/// Version 8: CRL partition leases (as Boulder's `LeaseCRLShard`): the CA node that may
/// reserve a CRL's next number and publish it, until `until_ns`.
const V8: &str = r#"
CREATE TABLE crl_leases (
    hierarchy        smallint NOT NULL,
    crl_scope        integer  NOT NULL,
    crl_prefecture   text COLLATE "C" NOT NULL DEFAULT '',
    crl_municipality text COLLATE "C" NOT NULL DEFAULT '',
    holder           text     NOT NULL,
    until_ns         bigint   NOT NULL,
    PRIMARY KEY (hierarchy, crl_scope, crl_prefecture, crl_municipality)
);
"#;

/// Version 9: edges' OCSP signer requests (`ca::storage::SignerRequest`): one per edge node,
/// hierarchy and root generation; the CSR an edge put in, and the CA node's answer — the
/// certificate, or the reason it was refused (both NULL while pending).
const V9: &str = r#"
CREATE TABLE signer_requests (
    node         text COLLATE "C" NOT NULL,
    hierarchy    smallint NOT NULL,
    generation   integer  NOT NULL CHECK (generation >= 1),
    csr          bytea    NOT NULL,
    in_force     bytea    NOT NULL,
    requested_ns bigint   NOT NULL,
    certificate  bytea,
    refused      text,
    answered_ns  bigint,
    PRIMARY KEY (node, hierarchy, generation),
    CHECK (certificate IS NULL OR refused IS NULL)
);
CREATE INDEX signer_requests_pending ON signer_requests (node, hierarchy, generation)
    WHERE certificate IS NULL AND refused IS NULL;
"#;

/// Version 10: CRLs per root generation (docs/roots.md). Each generation of a hierarchy's root
/// signs the CRLs of the certificates it issued, so a CRL is (hierarchy, generation, scope):
/// `generation` joins the key of the CRL entries, dirty flags, publisher states and leases,
/// and every certificate records the generation that issued it. Rows written before are
/// generation 1 (the root `jpki init` made) by the column's default: nothing is rewritten.
const V10: &str = r#"
ALTER TABLE certificates ADD COLUMN generation integer NOT NULL DEFAULT 1;

ALTER TABLE revoked ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE revoked DROP CONSTRAINT revoked_pkey,
    ADD PRIMARY KEY (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality, serial);

ALTER TABLE crl_dirty ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE crl_dirty DROP CONSTRAINT crl_dirty_pkey,
    ADD PRIMARY KEY (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality);

ALTER TABLE crl_state ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE crl_state DROP CONSTRAINT crl_state_pkey,
    ADD PRIMARY KEY (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality);

ALTER TABLE crl_leases ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE crl_leases DROP CONSTRAINT crl_leases_pkey,
    ADD PRIMARY KEY (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality);
"#;

/// Version 11: the register's identity index (`ca::storage::identity_key`: SHA-256 of the
/// whitespace-free name and the date of birth), so that registration's duplicate-person check
/// is a lookup, not a scan. Computed by the engine when it writes a resident; rows written
/// before are filled in by the engine at start-up (`PgStorage::open`), since the key's
/// whitespace rule is Rust's `char::is_whitespace`.
const V11: &str = r#"
ALTER TABLE residents ADD COLUMN identity bytea CHECK (octet_length(identity) = 32);
CREATE INDEX residents_by_identity ON residents (identity, id);
"#;

/// Version 15: the issuance log (`ca::storage::Storage::issued_since`): one row per
/// certificate issued to a holder, written by add_certificate in the same transaction, which
/// the OCSP pre-signer follows instead of walking every certificate. Like revocation_log, seq
/// comes from a sequence (commit order only approximately). Certificates issued before are
/// not back-filled: the pre-signer covers them with one walk of the certificates.
const V15: &str = r#"
CREATE TABLE issuance_log (
    seq          bigserial PRIMARY KEY,
    hierarchy    smallint NOT NULL,
    serial       bytea    NOT NULL,
    not_after_ns bigint   NOT NULL
);
"#;
