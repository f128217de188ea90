//! Tamper-evident chains. Each tenant's audit log is one chain and its delivery attempts another:
//! every entry stores its place (`chain_seq`, from 1), the hash of the entry before it
//! (`prev_hash`; 64 zeros before the first) and its own `hash`:
//!
//! ```text
//! hash   = hex(SHA-256(prev_hash ‖ digest))
//! digest = hex(SHA-256(canonical))
//! canonical = the entry's columns, plus "chain", as a JSON object with its keys sorted and no
//!             whitespace (UTF-8; byte strings as "sha256:<hex of their SHA-256>")
//! ```
//!
//! A chained insert is a [`Stmt`] that carries [`Chained`], with its entries' digests computed
//! where the statement is made (on the caller's thread, not the database writer's): the backend,
//! inside the transaction that writes it, reads the chain's head (locking it on PostgreSQL, where
//! several servers write), fills in the link, and moves the head ([`Heads`]). So links are made in commit order, a crash
//! loses none (the head commits with its entries), and an entry changed, removed or added later
//! breaks the chain where it happened. `ledger.rs` walks the chains and prunes them.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::sql::{Stmt, Value};
use super::StoreError;
use crate::crypto::Cipher;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chains, one of each per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    Audit,
    Attempts,
}

/// The audit log's chained columns, in the order of a chained insert's first parameters.
const AUDIT_COLUMNS: &[&str] = &["tenant_id", "actor", "action", "target", "details", "at"];

/// An attempt's chained columns (all of them but the chain's own), in the order of a chained
/// insert's first parameters.
const ATTEMPT_COLUMNS: &[&str] = &[
    "id",
    "delivery_seq",
    "tenant_id",
    "webhook_id",
    "event_ref",
    "event_type",
    "attempt_no",
    "success",
    "http_status",
    "error",
    "response_ms",
    "request_headers",
    "dispatched_at",
    "response_body",
    "next_attempt_at",
    "created_at",
    "format",
    "response_headers",
];

impl Chain {
    pub const ALL: [Chain; 2] = [Chain::Audit, Chain::Attempts];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Attempts => "attempts",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }

    /// The table its entries are rows of.
    pub fn table(self) -> &'static str {
        match self {
            Self::Audit => "audit_log",
            Self::Attempts => "attempts",
        }
    }

    /// The columns an entry's canonical form covers.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Audit => AUDIT_COLUMNS,
            Self::Attempts => ATTEMPT_COLUMNS,
        }
    }

    fn tenant_column(self) -> usize {
        self.columns().iter().position(|c| *c == "tenant_id").expect("every chain has tenant_id")
    }

    /// The order the canonical form writes the columns in (indexes into [`Chain::columns`], with
    /// `None` for the `chain` key), sorted by key.
    fn key_order(self) -> &'static [(&'static str, Option<usize>)] {
        static AUDIT: OnceLock<Vec<(&str, Option<usize>)>> = OnceLock::new();
        static ATTEMPTS: OnceLock<Vec<(&str, Option<usize>)>> = OnceLock::new();
        let cell = match self {
            Self::Audit => &AUDIT,
            Self::Attempts => &ATTEMPTS,
        };
        cell.get_or_init(|| {
            let mut keys: Vec<(&str, Option<usize>)> =
                self.columns().iter().enumerate().map(|(i, c)| (*c, Some(i))).collect();
            keys.push(("chain", None));
            keys.sort_by_key(|(k, _)| *k);
            keys
        })
    }
}

/// The canonical form of an entry of `chain` whose columns hold `values` (in the order of
/// [`Chain::columns`]).
pub fn canonical(chain: Chain, values: &[&Value]) -> String {
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (n, (key, column)) in chain.key_order().iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, key);
        out.push(b':');
        match column {
            None => write_json_str(&mut out, chain.as_str()),
            Some(i) => match values.get(*i).copied().unwrap_or(&Value::Null) {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Int(v) => write!(out, "{v}").expect("writing to memory"),
                Value::Text(s) => write_json_str(&mut out, s),
                Value::Bytes(b) => {
                    write!(out, "\"sha256:{}\"", hex::encode(Sha256::digest(b))).expect("writing to memory")
                }
                // No chained column is an array.
                Value::Array(_) => out.extend_from_slice(b"null"),
            },
        }
    }
    out.push(b'}');
    String::from_utf8(out).expect("JSON of UTF-8 text is UTF-8")
}

/// The digest of an entry: hex SHA-256 of its canonical form.
pub fn entry_digest(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("a string serializes");
}

/// The hash of an entry whose digest is `digest`, following `prev_hash`.
pub fn link_hash(prev_hash: &str, digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(digest.as_bytes());
    hex::encode(h.finalize())
}

/// What a chained insert appends.
#[derive(Debug, Clone)]
pub struct Chained {
    pub chain: Chain,
    pub rows: ChainedRows,
    /// Each entry's digest, in row order.
    digests: Vec<String>,
}

/// The digest of an entry whose columns hold `values` (in the order of [`Chain::columns`]; any
/// further values are not the entry's).
pub fn digest_of(chain: Chain, values: &[Value]) -> String {
    let refs: Vec<&Value> = values.iter().take(chain.columns().len()).collect();
    entry_digest(&canonical(chain, &refs))
}

/// Where a chained insert's entries and links are.
#[derive(Debug, Clone)]
pub enum ChainedRows {
    /// A one-row insert: its first parameters are the chain's columns in order; the parameters at
    /// these indexes take the link.
    Row { seq: usize, prev_hash: usize, hash: usize },
    /// A multi-row insert from one array parameter per column (PostgreSQL's `unnest`): row `i`
    /// is an entry of tenant `tenants[i]`; the array parameters at these indexes take the links.
    Rows { tenants: Vec<String>, seq: usize, prev_hash: usize, hash: usize },
}

impl Stmt {
    /// A chained one-row insert (see [`ChainedRows::Row`]).
    pub fn chained_row(sql: &'static str, params: Vec<Value>, chain: Chain, slots: [usize; 3]) -> Self {
        let rows = ChainedRows::Row { seq: slots[0], prev_hash: slots[1], hash: slots[2] };
        let digests = vec![digest_of(chain, &params)];
        Self { sql, params, chain: Some(Box::new(Chained { chain, rows, digests })) }
    }

    /// A chained multi-row insert (see [`ChainedRows::Rows`]): each row is its tenant and its
    /// entry's digest ([`digest_of`]); `slots` are the parameters that take the links' arrays.
    pub fn chained_rows(
        sql: &'static str,
        params: Vec<Value>,
        chain: Chain,
        slots: [usize; 3],
        rows: Vec<(String, String)>,
    ) -> Self {
        let (tenants, digests) = rows.into_iter().unzip();
        let rows = ChainedRows::Rows { tenants, seq: slots[0], prev_hash: slots[1], hash: slots[2] };
        Self { sql, params, chain: Some(Box::new(Chained { chain, rows, digests })) }
    }
}

impl Chained {
    /// The chains (with their tenants) the statement appends to.
    pub fn keys<'a>(&'a self, stmt: &'a Stmt) -> impl Iterator<Item = (Chain, &'a str)> + 'a {
        let t = self.chain.tenant_column();
        let tenant = |values: &'a [Value]| match values.get(t) {
            Some(Value::Text(s)) => s.as_str(),
            _ => "",
        };
        let tenants: Vec<&str> = match &self.rows {
            ChainedRows::Row { .. } => vec![tenant(&stmt.params)],
            ChainedRows::Rows { tenants, .. } => tenants.iter().map(String::as_str).collect(),
        };
        tenants.into_iter().map(move |t| (self.chain, t))
    }

    /// How many rows the insert must write: one that writes fewer would leave a link without
    /// its entry.
    pub fn rows(&self) -> u64 {
        match &self.rows {
            ChainedRows::Row { .. } => 1,
            ChainedRows::Rows { tenants, .. } => tenants.len() as u64,
        }
    }
}

/// A chain's last link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS.to_string() }
    }
}

/// The heads of the chains one transaction appends to: read (and on PostgreSQL locked) once,
/// moved in memory by each chained insert, written back in the same transaction (on PostgreSQL
/// by a statement that also checks the entries are there, sent with the `COMMIT`).
#[derive(Debug, Default)]
pub struct Heads {
    /// Each head as it moved, and its seq as read.
    heads: HashMap<(Chain, String), (Head, i64)>,
}

impl Heads {
    pub fn contains(&self, chain: Chain, tenant: &str) -> bool {
        self.heads.contains_key(&(chain, tenant.to_string()))
    }

    /// Sets a head as read from the database (the genesis when the chain has none yet).
    pub fn load(&mut self, chain: Chain, tenant: &str, head: Head) {
        let read = head.seq;
        self.heads.insert((chain, tenant.to_string()), (head, read));
    }

    /// Fills in the links of a chained insert (nothing for another statement), each following
    /// the head of its chain, which moves past it. Linking the same statement again (after a
    /// rolled-back try) overwrites its links.
    pub fn link(&mut self, stmt: &mut Stmt) -> Result<(), StoreError> {
        let Some(chained) = &mut stmt.chain else { return Ok(()) };
        let chain = chained.chain;
        let t = chain.tenant_column();
        let text = |v: Option<&Value>| match v {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        };
        let mut next = |tenant: String, digest: &str| -> Result<(i64, String, String), StoreError> {
            let (head, _) = self
                .heads
                .get_mut(&(chain, tenant))
                .ok_or_else(|| StoreError::Database(format!("a head of the {} chain was not read", chain.as_str())))?;
            let seq = head.seq + 1;
            let hash = link_hash(&head.hash, digest);
            let prev = std::mem::replace(&mut head.hash, hash.clone());
            head.seq = seq;
            Ok((seq, prev, hash))
        };
        match &mut chained.rows {
            ChainedRows::Row { seq, prev_hash, hash } => {
                let digest = chained.digests.first().map(String::as_str).unwrap_or_default();
                let (s, p, h) = next(text(stmt.params.get(t)), digest)?;
                for (i, v) in [(*seq, Value::Int(s)), (*prev_hash, Value::Text(p)), (*hash, Value::Text(h))] {
                    if let Some(slot) = stmt.params.get_mut(i) {
                        *slot = v;
                    }
                }
            }
            ChainedRows::Rows { tenants, seq, prev_hash, hash } => {
                let (mut seqs, mut prevs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
                for (tenant, digest) in tenants.iter().zip(&chained.digests) {
                    let (s, p, h) = next(tenant.clone(), digest)?;
                    seqs.push(Value::Int(s));
                    prevs.push(Value::Text(p));
                    hashes.push(Value::Text(h));
                }
                for (i, v) in [(*seq, seqs), (*prev_hash, prevs), (*hash, hashes)] {
                    if let Some(slot) = stmt.params.get_mut(i) {
                        *slot = Value::Array(v);
                    }
                }
            }
        }
        Ok(())
    }

    /// The statements that write back the heads that moved, each signed by `signer` (a process
    /// that has not loaded the master key writes them unsigned, which `verify-log` reports).
    pub fn write_back(&self, signer: Option<&Cipher>) -> Vec<Stmt> {
        self.moved()
            .map(|(chain, tenant, head, _)| {
                let signature = signer.map(|s| s.sign(head_message(chain, tenant, head).as_bytes()));
                Stmt::new(
                    "INSERT INTO chain_heads (chain, tenant_id, seq, hash, signature) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (chain, tenant_id) DO UPDATE \
                     SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature",
                    crate::params![chain.as_str(), tenant, head.seq, head.hash.as_str(), signature],
                )
            })
            .collect()
    }

    /// PostgreSQL's write-back: each head that moved is updated (the transaction created and
    /// locked it), and the same statement counts its chain's entries past the head it read, by
    /// the unique index on `(tenant_id, chain_seq)`. Should an insert have written fewer rows
    /// than it linked, the count falls short and the statement fails (`invalid input syntax for
    /// type bigint: "a chained insert wrote fewer rows than it linked"`), and so does the
    /// transaction: its `COMMIT` can then travel with these statements instead of waiting for
    /// their results to be checked ([`check_written`]), a round trip less while the head is locked.
    pub fn write_back_checked(&self, signer: Option<&Cipher>) -> Vec<Stmt> {
        macro_rules! checked {
            ($table:literal) => {
                concat!(
                    "UPDATE chain_heads SET seq = CAST(CASE WHEN (SELECT count(*) FROM ",
                    $table,
                    " e WHERE e.tenant_id = $2 AND e.chain_seq > CAST($6 AS BIGINT) \
                     AND e.chain_seq <= CAST($3 AS BIGINT)) = CAST($3 AS BIGINT) - CAST($6 AS BIGINT) \
                     THEN CAST(CAST($3 AS BIGINT) AS TEXT) ELSE 'a chained insert wrote fewer rows than it linked' \
                     END AS BIGINT), hash = $4, signature = $5 WHERE chain = $1 AND tenant_id = $2"
                )
            };
        }
        self.moved()
            .map(|(chain, tenant, head, read)| {
                let signature = signer.map(|s| s.sign(head_message(chain, tenant, head).as_bytes()));
                let sql = match chain {
                    Chain::Audit => checked!("audit_log"),
                    Chain::Attempts => checked!("attempts"),
                };
                Stmt::new(sql, crate::params![chain.as_str(), tenant, head.seq, head.hash.as_str(), signature, read])
            })
            .collect()
    }

    /// The heads that moved: chain, tenant, head, and its seq as read.
    fn moved(&self) -> impl Iterator<Item = (Chain, &str, &Head, i64)> {
        self.heads
            .iter()
            .filter(|(_, (head, read))| head.seq != *read)
            .map(|((chain, tenant), (head, read))| (*chain, tenant.as_str(), head, *read))
    }
}

/// What a head's signature covers.
pub fn head_message(chain: Chain, tenant: &str, head: &Head) -> String {
    format!("tocsin chain head\n{}\n{tenant}\n{}\n{}", chain.as_str(), head.seq, head.hash)
}

/// Checks that a chained insert wrote all its rows.
pub fn check_written(stmt: &Stmt, affected: u64) -> Result<(), StoreError> {
    match &stmt.chain {
        Some(c) if affected != c.rows() => Err(StoreError::Database(format!(
            "a chained insert into {} wrote {affected} of its {} rows; rolled back so that no link lacks its entry",
            c.chain.table(),
            c.rows()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_form_is_sorted_compact_json_that_python_writes_alike() {
        let values = [
            Value::Text("default".into()),
            Value::Text("token:1".into()),
            Value::Text("webhook.create".into()),
            Value::Text("webhook:\"x\"\n".into()),
            Value::Text(r#"{"b":1}"#.into()),
            Value::Int(1_778_250_645_123),
        ];
        let refs: Vec<&Value> = values.iter().collect();
        let text = canonical(Chain::Audit, &refs);
        assert_eq!(
            text,
            r#"{"action":"webhook.create","actor":"token:1","at":1778250645123,"chain":"audit","details":"{\"b\":1}","target":"webhook:\"x\"\n","tenant_id":"default"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), text, "serde_json's sorted map writes the same");
        let mut attempt: Vec<&Value> = vec![&Value::Null; 13];
        let body = Value::Bytes(b"abc".to_vec());
        attempt.push(&body);
        assert!(canonical(Chain::Attempts, &attempt)
            .contains(r#""response_body":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#));
    }

    #[test]
    fn links_follow_their_heads_and_the_heads_move() {
        let mut heads = Heads::default();
        heads.load(Chain::Audit, "t", Head::genesis());
        let insert = |actor: &str| {
            Stmt::chained_row(
                "INSERT",
                crate::params!["t", actor, "a", "x", "{}", 5_i64, None::<i64>, None::<String>, None::<String>],
                Chain::Audit,
                [6, 7, 8],
            )
        };
        let (mut first, mut second) = (insert("one"), insert("two"));
        heads.link(&mut first).unwrap();
        heads.link(&mut second).unwrap();
        assert!(matches!(first.params[6], Value::Int(1)) && matches!(second.params[6], Value::Int(2)));
        assert!(matches!(&first.params[7], Value::Text(p) if p == GENESIS));
        assert_eq!(second.params[7], first.params[8], "each link names the one before");
        let Value::Text(hash) = &first.params[8] else { panic!("a hash") };
        let values: Vec<&Value> = first.params.iter().take(6).collect();
        assert_eq!(*hash, link_hash(GENESIS, &entry_digest(&canonical(Chain::Audit, &values))));
        let signer = Cipher::new(&[7; 32]);
        let written = heads.write_back(Some(&signer));
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].params[2], Value::Int(2));
        let Value::Text(signature) = &written[0].params[4] else { panic!("signed") };
        let head = Head {
            seq: 2,
            hash: match &second.params[8] {
                Value::Text(h) => h.clone(),
                _ => panic!(),
            },
        };
        assert!(signer.verify(head_message(Chain::Audit, "t", &head).as_bytes(), signature));
        let mut other = Heads::default();
        assert!(other.link(&mut insert("three")).is_err(), "a head not read is an error, not a fork");
    }
}
