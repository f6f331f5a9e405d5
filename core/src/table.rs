//! Tables as dm models them (name, columns, keys) and what a row change does: the value types
//! shared by the schema tracker, the binlog decoder, the rules, the plugins and both phases.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `` `name` `` with backticks doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `schema`.`table` as written in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// The name quoted for SQL: `` `db`.`t` ``.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`.`{}`", self.schema, self.table)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// Base type as `information_schema.COLUMNS.DATA_TYPE` names it: `int`, `varchar`, ...
    pub data_type: String,
    #[serde(default)]
    pub unsigned: bool,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Generated columns are computed by the target, never written.
    #[serde(default)]
    pub generated: bool,
    /// The members of an ENUM or SET, in order (a row event carries their index or bits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The members of `enum('a','b''c')` or `set(...)` as `COLUMN_TYPE` writes them.
pub fn enum_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return vec![];
    };
    let mut members = vec![];
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut m = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    m.push('\'');
                }
                '\'' => break,
                '\\' => m.extend(chars.next()),
                c => m.push(c),
            }
        }
        members.push(m);
    }
    members
}

/// How a column's values are decoded and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integer of the given width in bytes.
    Int(u8),
    Float,
    Double,
    Decimal,
    Year,
    Date,
    DateTime,
    Timestamp,
    Time,
    Enum,
    Set,
    Bit,
    Json,
    /// Strings, binaries, blobs, geometry: bytes copied as they are.
    Bytes,
}

impl Column {
    pub fn kind(&self) -> ColumnKind {
        match self.data_type.as_str() {
            "tinyint" | "bool" | "boolean" => ColumnKind::Int(1),
            "smallint" => ColumnKind::Int(2),
            "mediumint" => ColumnKind::Int(3),
            "int" | "integer" => ColumnKind::Int(4),
            "bigint" => ColumnKind::Int(8),
            "float" => ColumnKind::Float,
            "double" | "real" | "double precision" => ColumnKind::Double,
            "decimal" | "numeric" | "dec" | "fixed" => ColumnKind::Decimal,
            "year" => ColumnKind::Year,
            "date" => ColumnKind::Date,
            "datetime" => ColumnKind::DateTime,
            "timestamp" => ColumnKind::Timestamp,
            "time" => ColumnKind::Time,
            "enum" => ColumnKind::Enum,
            "set" => ColumnKind::Set,
            "bit" => ColumnKind::Bit,
            "json" => ColumnKind::Json,
            _ => ColumnKind::Bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: TableName,
    pub columns: Vec<Column>,
    /// Column names of the primary key, in key order; empty when there is none.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Unique keys: (index name, column names).
    #[serde(default)]
    pub unique_keys: Vec<(String, Vec<String>)>,
    /// Keys (`PRIMARY` or a unique index name) with a prefix column (`name(10)`): only the
    /// prefix is unique, so two different values may still collide.
    #[serde(default)]
    pub prefixed_keys: Vec<String>,
}

#[cfg(test)]
impl Table {
    /// A table of nullable INT columns without keys, for unit tests of row rules.
    pub(crate) fn of_nullable_ints(name: TableName, columns: &[&str]) -> Table {
        Table {
            name,
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    data_type: "int".into(),
                    unsigned: false,
                    nullable: true,
                    generated: false,
                    members: vec![],
                })
                .collect(),
            primary_key: vec![],
            unique_keys: vec![],
            prefixed_keys: vec![],
        }
    }
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The columns that identify a row: the primary key, else the first unique key whose
    /// columns are all NOT NULL. `None` for tables without such a key.
    pub fn identity_key(&self) -> Option<Vec<usize>> {
        let idx = |cols: &[String]| -> Option<Vec<usize>> {
            cols.iter().map(|c| self.column_index(c)).collect()
        };
        if !self.primary_key.is_empty() {
            return idx(&self.primary_key);
        }
        self.unique_keys.iter().find_map(|(_, cols)| {
            let ix = idx(cols)?;
            ix.iter().all(|&i| !self.columns[i].nullable).then_some(ix)
        })
    }

    /// Removes a column and its mentions in keys (a key that loses all columns goes).
    pub fn drop_column(&mut self, name: &str) {
        self.columns.retain(|c| !c.name.eq_ignore_ascii_case(name));
        self.primary_key.retain(|c| !c.eq_ignore_ascii_case(name));
        for (_, cols) in &mut self.unique_keys {
            cols.retain(|c| !c.eq_ignore_ascii_case(name));
        }
        self.unique_keys.retain(|(_, cols)| !cols.is_empty());
    }

    /// Renames a column everywhere it is mentioned.
    pub fn rename_column(&mut self, old: &str, new: &str) {
        for c in &mut self.columns {
            if c.name.eq_ignore_ascii_case(old) {
                c.name = new.to_string();
            }
        }
        for c in self
            .primary_key
            .iter_mut()
            .chain(self.unique_keys.iter_mut().flat_map(|(_, k)| k.iter_mut()))
        {
            if c.eq_ignore_ascii_case(old) {
                *c = new.to_string();
            }
        }
    }
}

/// What a row change does to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    Insert,
    Update,
    Delete,
}
