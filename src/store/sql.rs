//! The small SQL vocabulary both backends share: parameter and column values, rows, and
//! statements. Queries are written once, with `$1`-style placeholders (PostgreSQL's; SQLite
//! reads them as named parameters), over portable column types: BIGINT, TEXT and bytes.

use super::StoreError;

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    /// A PostgreSQL array of one type (its elements `Null` or that type), for statements that
    /// take many rows as one array per column (`unnest`): sent in binary, parsed by nothing.
    /// SQLite has no arrays: a statement given one fails.
    Array(Vec<Value>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(v as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}
impl From<uuid::Uuid> for Value {
    fn from(v: uuid::Uuid) -> Self {
        Self::Text(v.to_string())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// Builds a `Vec<Value>` from mixed arguments.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::sql::Value::from($v)),*] };
}

/// The names of a result's columns, shared by its rows.
pub type Columns = std::sync::Arc<[Box<str>]>;

/// One result row. Columns are read by name (as the query's SELECT list or RETURNING clause
/// names them, aliases included), so a query and the code reading it cannot drift apart.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Columns,
    values: Vec<Value>,
}

impl Row {
    pub fn new(columns: Columns, values: Vec<Value>) -> Self {
        Self { columns, values }
    }

    /// A column's value as it was read.
    pub fn value(&self, name: &str) -> Result<&Value, StoreError> {
        self.at(name)
    }

    fn at(&self, name: &str) -> Result<&Value, StoreError> {
        self.columns
            .iter()
            .position(|c| c.as_ref() == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("column {name} missing")))
    }

    pub fn int(&self, name: &str) -> Result<i64, StoreError> {
        match self.at(name)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Corrupt(format!("column {name}: expected integer, got {other:?}"))),
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.at(name)? {
            Value::Null => Ok(None),
            _ => self.int(name).map(Some),
        }
    }

    pub fn text(&self, name: &str) -> Result<String, StoreError> {
        match self.at(name)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {name}: expected text, got {other:?}"))),
        }
    }

    pub fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.at(name)? {
            Value::Null => Ok(None),
            _ => self.text(name).map(Some),
        }
    }

    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        match self.at(name)? {
            Value::Bytes(v) => Ok(v.clone()),
            Value::Text(v) => Ok(v.clone().into_bytes()),
            other => Err(StoreError::Corrupt(format!("column {name}: expected bytes, got {other:?}"))),
        }
    }

    pub fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.at(name)? {
            Value::Null => Ok(None),
            _ => self.bytes(name).map(Some),
        }
    }

    pub fn uuid(&self, name: &str) -> Result<uuid::Uuid, StoreError> {
        let t = self.text(name)?;
        t.parse().map_err(|_| StoreError::Corrupt(format!("column {name}: '{t}' is not a UUID")))
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        let t = self.text(name)?;
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

/// A statement with its parameters.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: &'static str,
    pub params: Vec<Value>,
    /// For an insert of entries of a tamper-evident chain: what the backend links
    /// ([`super::chain`]).
    pub chain: Option<Box<super::chain::Chained>>,
}

impl Stmt {
    pub fn new(sql: &'static str, params: Vec<Value>) -> Self {
        Self { sql, params, chain: None }
    }

    /// A statement without parameters, as a `static`.
    pub const fn constant(sql: &'static str) -> Self {
        Self { sql, params: Vec::new(), chain: None }
    }
}

/// What a statement of a write produced.
#[derive(Debug, Default)]
pub struct StmtResult {
    pub rows: Vec<Row>,
    pub affected: u64,
}
