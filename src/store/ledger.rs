//! The tamper-evident chains read back ([`super::chain`] makes them): walked and checked by
//! `tocsin verify-log`, exported page by page, and pruned by retention behind a checkpoint signed
//! with a key derived from the master key, so the chain that remains still verifies from it.

use super::chain::{canonical, entry_digest, head_message, link_hash, Chain, Head, GENESIS};
use super::sql::{Row, Stmt, Value};
use super::sql_store::count;
use super::{Store, StoreError};
use crate::crypto::Cipher;
use crate::domain::tenant::TenantId;
use crate::params;

/// Entries read per query while walking a chain.
const PAGE: i64 = 1000;

/// One chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub chain: Chain,
    pub tenant: String,
    /// Entries checked (those retention pruned are behind the checkpoint).
    pub entries: u64,
    /// Where the stored part begins: after the checkpoint, or at 1.
    pub first_seq: i64,
    /// The last link (an auditor who keeps it can tell later whether the chain was rewritten).
    pub head: Head,
}

/// The first place a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub chain: Chain,
    pub tenant: String,
    pub seq: i64,
    /// The row's id (empty when the entry is missing).
    pub id: String,
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = if self.id.is_empty() { String::new() } else { format!(" (id {})", self.id) };
        write!(f, "{} chain of tenant {}: entry {}{id}: {}", self.chain.as_str(), self.tenant, self.seq, self.problem)
    }
}

/// What walking every chain found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub chains: Vec<ChainSummary>,
    pub broken: Option<Break>,
    /// Rows written before the chains existed (no link), not covered.
    pub unchained: u64,
}

/// One entry as exported: its link and the object its hash covers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainEntry {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The entry's canonical object: `hash = SHA-256(prev_hash ‖ hex SHA-256 of its sorted,
    /// compact JSON)`.
    pub entry: serde_json::Value,
}

/// What a checkpoint's signature covers.
fn checkpoint_message(chain: Chain, tenant: &str, seq: i64, hash: &str) -> String {
    format!("tocsin chain checkpoint\n{}\n{tenant}\n{seq}\n{hash}", chain.as_str())
}

fn page_sql(chain: Chain) -> &'static str {
    match chain {
        Chain::Audit => {
            "SELECT CAST(id AS TEXT) AS row_id, chain_seq, prev_hash, hash, tenant_id, actor, action, target, details, at \
             FROM audit_log WHERE tenant_id = $1 AND chain_seq > $2 AND chain_seq <= $4 ORDER BY chain_seq LIMIT $3"
        }
        Chain::Attempts => {
            "SELECT id AS row_id, chain_seq, prev_hash, hash, id, delivery_seq, tenant_id, webhook_id, event_ref, \
             event_type, attempt_no, success, http_status, error, response_ms, request_headers, dispatched_at, \
             response_body, next_attempt_at, created_at, format, response_headers \
             FROM attempts WHERE tenant_id = $1 AND chain_seq > $2 AND chain_seq <= $4 ORDER BY chain_seq LIMIT $3"
        }
    }
}

fn tenants_sql(chain: Chain) -> &'static str {
    match chain {
        Chain::Audit => {
            "SELECT DISTINCT tenant_id FROM audit_log WHERE chain_seq IS NOT NULL \
             UNION SELECT tenant_id FROM chain_heads WHERE chain = $1 \
             UNION SELECT tenant_id FROM chain_checkpoints WHERE chain = $1"
        }
        Chain::Attempts => {
            "SELECT DISTINCT tenant_id FROM attempts WHERE chain_seq IS NOT NULL \
             UNION SELECT tenant_id FROM chain_heads WHERE chain = $1 \
             UNION SELECT tenant_id FROM chain_checkpoints WHERE chain = $1"
        }
    }
}

fn unchained_sql(chain: Chain) -> &'static str {
    match chain {
        Chain::Audit => "SELECT COUNT(*) AS n FROM audit_log WHERE chain_seq IS NULL",
        Chain::Attempts => "SELECT COUNT(*) AS n FROM attempts WHERE chain_seq IS NULL",
    }
}

/// A stored entry: its link, and the hash its columns give.
struct Stored {
    id: String,
    seq: i64,
    prev_hash: String,
    hash: String,
    canonical: String,
}

fn stored(chain: Chain, row: &Row) -> Result<Stored, StoreError> {
    let seq = row.int("chain_seq")?;
    let values: Vec<&Value> = chain.columns().iter().map(|c| row.value(c)).collect::<Result<_, _>>()?;
    Ok(Stored {
        id: row.text("row_id")?,
        seq,
        prev_hash: row.opt_text("prev_hash")?.unwrap_or_default(),
        hash: row.opt_text("hash")?.unwrap_or_default(),
        canonical: canonical(chain, &values),
    })
}

impl Store {
    /// Walks every chain of every tenant and checks each link: the entries follow each other
    /// without a gap from the checkpoint (whose signature must be the master key's), each
    /// `prev_hash` is the hash before it, each hash is its content's, and the chain ends at its
    /// head. Stops at the first break.
    pub async fn verify_chains(&self, cipher: &Cipher) -> Result<Verification, StoreError> {
        let mut out = Verification::default();
        for chain in Chain::ALL {
            out.unchained += count(&self.db.query(unchained_sql(chain), vec![]).await?)?;
            let rows = self.db.query(tenants_sql(chain), params![chain.as_str()]).await?;
            let mut tenants: Vec<String> = rows.iter().map(|r| r.text("tenant_id")).collect::<Result<_, _>>()?;
            tenants.sort();
            for tenant in tenants {
                match self.verify_chain(chain, &tenant, cipher).await? {
                    Ok(summary) => out.chains.push(summary),
                    Err(broken) => {
                        out.broken = Some(broken);
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn verify_chain(
        &self,
        chain: Chain,
        tenant: &str,
        cipher: &Cipher,
    ) -> Result<Result<ChainSummary, Break>, StoreError> {
        let broken = |seq: i64, id: &str, problem: String| {
            Ok(Err(Break { chain, tenant: tenant.to_string(), seq, id: id.to_string(), problem }))
        };
        // The head first: entries are committed with it, so every entry up to it is there to
        // read, and those that servers add meanwhile are past it (left for the next walk).
        let (head, head_signature) = match self.head(chain, tenant).await? {
            Some((head, signature)) => (Some(head), signature),
            None => (None, None),
        };
        let head_signed = match (&head, &head_signature) {
            (Some(h), Some(signature)) => cipher.verify(head_message(chain, tenant, h).as_bytes(), signature),
            _ => false,
        };
        let until = head.as_ref().map_or(i64::MAX, |h| h.seq);
        let (mut last, mut prev) = (0, GENESIS.to_string());
        let checkpoint = self.checkpoint(chain, tenant).await?;
        if let Some((seq, hash, signature)) = checkpoint {
            if !cipher.verify(checkpoint_message(chain, tenant, seq, &hash).as_bytes(), &signature) {
                return broken(seq, "", "the retention checkpoint's signature is not the master key's".into());
            }
            (last, prev) = (seq, hash);
        }
        let first_seq = last + 1;
        let mut entries = 0;
        loop {
            let rows = self.db.query(page_sql(chain), params![tenant, last, PAGE, until]).await?;
            for row in &rows {
                let e = stored(chain, row)?;
                if e.seq != last + 1 {
                    // Retention may have cut the chain since the walk began: then the checkpoint
                    // (signed) now ends just before this entry.
                    match self.checkpoint(chain, tenant).await? {
                        Some((seq, hash, signature))
                            if seq + 1 == e.seq
                                && cipher
                                    .verify(checkpoint_message(chain, tenant, seq, &hash).as_bytes(), &signature) =>
                        {
                            prev = hash;
                        }
                        _ => return broken(last + 1, "", format!("missing: the chain goes on at entry {}", e.seq)),
                    }
                }
                if e.prev_hash != prev {
                    return broken(e.seq, &e.id, "its prev_hash is not the hash of the entry before it".into());
                }
                if link_hash(&prev, &entry_digest(&e.canonical)) != e.hash {
                    return broken(e.seq, &e.id, "its hash does not match its content: it was changed".into());
                }
                (last, prev) = (e.seq, e.hash);
                entries += 1;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        match head {
            Some(h) if !head_signed => broken(
                h.seq,
                "",
                "the chain's head is not signed with the master key: the chain was rewritten or cut short".into(),
            ),
            Some(h) if h.seq == last && h.hash == prev => {
                Ok(Ok(ChainSummary { chain, tenant: tenant.to_string(), entries, first_seq, head: h }))
            }
            Some(h) if h.seq > last => broken(last + 1, "", format!("missing: the chain's head is entry {}", h.seq)),
            Some(_) => broken(last, "", "the chain's head does not match its last entry".into()),
            None if entries == 0 => Ok(Ok(ChainSummary {
                chain,
                tenant: tenant.to_string(),
                entries,
                first_seq,
                head: Head { seq: last, hash: prev },
            })),
            None => broken(last, "", "the chain's head is missing".into()),
        }
    }

    /// A chain's head and its signature.
    async fn head(&self, chain: Chain, tenant: &str) -> Result<Option<(Head, Option<String>)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT seq, hash, signature FROM chain_heads WHERE chain = $1 AND tenant_id = $2",
                params![chain.as_str(), tenant],
            )
            .await?;
        rows.first()
            .map(|r| Ok((Head { seq: r.int("seq")?, hash: r.text("hash")? }, r.opt_text("signature")?)))
            .transpose()
    }

    async fn checkpoint(&self, chain: Chain, tenant: &str) -> Result<Option<(i64, String, String)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT seq, hash, signature FROM chain_checkpoints WHERE chain = $1 AND tenant_id = $2",
                params![chain.as_str(), tenant],
            )
            .await?;
        rows.first().map(|r| Ok((r.int("seq")?, r.text("hash")?, r.text("signature")?))).transpose()
    }

    /// A page of a tenant's audit chain, after entry `after`, oldest first: what the export
    /// streams.
    pub async fn audit_chain_page(&self, tenant: &TenantId, after: i64) -> Result<Vec<ChainEntry>, StoreError> {
        let rows = self.db.query(page_sql(Chain::Audit), params![tenant.as_str(), after, PAGE, i64::MAX]).await?;
        rows.iter()
            .map(|row| {
                let e = stored(Chain::Audit, row)?;
                let entry = serde_json::from_str(&e.canonical).map_err(|err| StoreError::Corrupt(err.to_string()))?;
                Ok(ChainEntry { seq: e.seq, prev_hash: e.prev_hash, hash: e.hash, entry })
            })
            .collect()
    }

    /// Deletes delivery history older than `before`; returns how many attempts went. A chain is
    /// cut only below its first entry that is still young (entries are chained in commit order,
    /// which their times follow only roughly), and the last entry cut becomes the chain's
    /// signed checkpoint, from which the rest verifies.
    pub async fn prune(&self, before: i64, cipher: &Cipher) -> Result<u64, StoreError> {
        let old = self
            .db
            .query(
                "SELECT tenant_id, MAX(chain_seq) AS old FROM attempts \
                 WHERE created_at < $1 AND chain_seq IS NOT NULL GROUP BY tenant_id",
                params![before],
            )
            .await?;
        let mut stmts = Vec::new();
        let mut deletes = Vec::new();
        for row in &old {
            let tenant = row.text("tenant_id")?;
            let young = self
                .db
                .query(
                    "SELECT MIN(chain_seq) AS seq FROM attempts \
                     WHERE tenant_id = $1 AND created_at >= $2 AND chain_seq IS NOT NULL",
                    params![tenant.as_str(), before],
                )
                .await?;
            let first_young = young.first().map(|r| r.opt_int("seq")).transpose()?.flatten();
            let last_old = row.int("old")?;
            let cut = first_young.map_or(last_old, |s| (s - 1).min(last_old));
            let at_cut = self
                .db
                .query(
                    "SELECT hash FROM attempts WHERE tenant_id = $1 AND chain_seq = $2",
                    params![tenant.as_str(), cut],
                )
                .await?;
            let Some(hash) = at_cut.first().map(|r| r.text("hash")).transpose()? else { continue };
            let signature = cipher.sign(checkpoint_message(Chain::Attempts, &tenant, cut, &hash).as_bytes());
            stmts.push(Stmt::new(
                "INSERT INTO chain_checkpoints (chain, tenant_id, seq, hash, signature, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain, tenant_id) DO UPDATE \
                 SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature, at = excluded.at \
                 WHERE chain_checkpoints.seq < excluded.seq",
                params![Chain::Attempts.as_str(), tenant.as_str(), cut, hash, signature, crate::domain::time::now_ms()],
            ));
            deletes.push(stmts.len());
            stmts.push(Stmt::new(
                "DELETE FROM attempts WHERE tenant_id = $1 AND chain_seq <= $2",
                params![tenant.as_str(), cut],
            ));
        }
        deletes.push(stmts.len());
        stmts.push(Stmt::new("DELETE FROM attempts WHERE chain_seq IS NULL AND created_at < $1", params![before]));
        stmts.push(Stmt::new(
            "DELETE FROM deliveries WHERE state IN ('succeeded', 'failed') AND updated_at < $1",
            params![before],
        ));
        stmts.push(Stmt::new(
            "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
            params![before],
        ));
        let r = self.db.write(stmts).await?;
        Ok(deletes.iter().map(|&i| r[i].affected).sum())
    }
}
