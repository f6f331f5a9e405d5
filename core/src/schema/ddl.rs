//! DDL statements from QUERY events: which tables they touch and how they change the tracked
//! model. Statements are parsed with `sqlparser`'s MySQL dialect; the first keywords (read
//! with its tokenizer) decide whether a statement concerns tables at all, so that GRANTs,
//! views, triggers and the like are passed over without parsing.

use crate::table::{Column, Table, TableName};
use sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, ColumnOption, CreateTable, CreateTableLikeKind,
    DataType, Expr, IndexColumn, MySQLColumnPosition, ObjectName, ObjectType, RenameTableNameKind,
    Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    CreateDatabase,
    DropDatabase,
    AlterDatabase,
    CreateTable,
    DropTable,
    AlterTable,
    RenameTable,
    TruncateTable,
    CreateIndex,
    DropIndex,
}

/// A parsed DDL statement and the objects it touches.
#[derive(Debug, Clone)]
pub struct Ddl {
    pub kind: DdlKind,
    /// For database statements, the database.
    pub database: Option<String>,
    /// Tables touched; for RENAME the old and new names alternate.
    pub tables: Vec<TableName>,
    body: Body,
    default_db: String,
}

/// A table statement as `sqlparser` reads it, or a database statement read with its
/// tokenizer: the parser knows no `ALTER DATABASE`, and its rendering of `CREATE DATABASE`
/// drops the options. The options stay as the source wrote them.
#[derive(Debug, Clone)]
enum Body {
    Table(Box<Statement>),
    Database { options: String },
}

/// The first words of a statement, upper-cased, comments and whitespace skipped.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let dialect = MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().unwrap_or_default();
    tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .take(n)
        .collect()
}

/// The table and kind of an `ALTER TABLE` or `CREATE TABLE` that the parser does not
/// understand (`ENGINE=...`, `CONVERT TO CHARACTER SET`, `FORCE`, partitioning, MariaDB table
/// options): the target can run it and tell the table's definition. Not for CREATE TABLE
/// with SELECT or LIKE (the target would read its own rows) or with system versioning (its
/// hidden columns are in the row events but not in the definition).
pub fn unparsed_table_ddl(default_db: &str, sql: &str) -> Option<(TableName, DdlKind)> {
    let dialect = MySqlDialect {};
    let tokens: Vec<Token> = Tokenizer::new(&dialect, sql)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    // One statement only: the target would run everything after a `;` too.
    let last = tokens.iter().rposition(|t| *t != Token::SemiColon)?;
    if tokens[..last].contains(&Token::SemiColon) {
        return None;
    }
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.value.to_ascii_uppercase()),
        _ => None,
    };
    let is = |i: usize, k: &str| word(i).as_deref() == Some(k);
    let mut i = 1;
    let kind = match word(0)?.as_str() {
        "ALTER" => {
            while is(i, "ONLINE") || is(i, "IGNORE") {
                i += 1;
            }
            DdlKind::AlterTable
        }
        "CREATE" => {
            let refused = ["SELECT", "LIKE", "VERSIONING", "TEMPORARY"];
            if (0..tokens.len()).any(|j| refused.iter().any(|k| is(j, k))) {
                return None;
            }
            if is(i, "OR") && is(i + 1, "REPLACE") {
                i += 2;
            }
            DdlKind::CreateTable
        }
        _ => return None,
    };
    if !is(i, "TABLE") {
        return None;
    }
    i += 1;
    if kind == DdlKind::CreateTable && is(i, "IF") && is(i + 1, "NOT") && is(i + 2, "EXISTS") {
        i += 3;
    }
    let name = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let first = name(i)?;
    let table = match (tokens.get(i + 1), name(i + 2)) {
        (Some(Token::Period), Some(t)) => TableName::new(first, t),
        _ => TableName::new(default_db, first),
    };
    Some((table, kind))
}

/// Whether a QUERY event's statement is DDL on databases or tables that dm must replicate and
/// track. `None` for anything else (transaction control, users, views, routines, ...).
fn is_table_ddl(sql: &str) -> bool {
    let words = leading_words(sql, 4);
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "ALTER" => matches!(w(1), "TABLE" | "DATABASE" | "SCHEMA" | "IGNORE" | "ONLINE"),
        "RENAME" => matches!(w(1), "TABLE" | "TABLES"),
        "TRUNCATE" => true,
        "CREATE" | "DROP" => {
            // Skip modifiers that may precede the object type.
            let obj = words[1..]
                .iter()
                .find(|x| !matches!(x.as_str(), "OR" | "REPLACE" | "ONLINE" | "OFFLINE"))
                .map(String::as_str)
                .unwrap_or("");
            matches!(
                obj,
                "TABLE" | "DATABASE" | "SCHEMA" | "INDEX" | "UNIQUE" | "FULLTEXT" | "SPATIAL"
            )
        }
        _ => false,
    }
}

pub(super) fn table_name(default_db: &str, name: &ObjectName) -> TableName {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.clone(),
            None => p.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [db, t] => TableName::new(db.clone(), t.clone()),
        [t] => TableName::new(default_db, t.clone()),
        _ => TableName::new(default_db, name.to_string()),
    }
}

fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident().map(|i| i.value.clone()))
        .unwrap_or_else(|| name.to_string())
}

/// Byte offset of a tokenizer location (1-based line and character column) in `sql`.
fn byte_offset(sql: &str, at: sqlparser::tokenizer::Location) -> usize {
    let line_start: usize = sql
        .split_inclusive('\n')
        .take(at.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let column = at.column.saturating_sub(1) as usize;
    line_start
        + sql[line_start..]
            .char_indices()
            .nth(column)
            .map_or(sql.len() - line_start, |(i, _)| i)
}

/// `CREATE DATABASE [IF NOT EXISTS] db options`, `DROP DATABASE [IF EXISTS] db`, `ALTER
/// DATABASE [db] options` (SCHEMA alike): the kind, the database and the options' text.
/// `None` for other statements.
fn database_ddl(default_db: &str, sql: &str) -> Option<Result<(DdlKind, String, String), String>> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let words: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let word = |i: usize| match words.get(i).map(|t| &t.token) {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    };
    let is = |i: usize, k: &str| {
        word(i).is_some_and(|w| w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
    };
    let kind = match () {
        _ if is(0, "CREATE") => DdlKind::CreateDatabase,
        _ if is(0, "DROP") => DdlKind::DropDatabase,
        _ if is(0, "ALTER") => DdlKind::AlterDatabase,
        _ => return None,
    };
    if !is(1, "DATABASE") && !is(1, "SCHEMA") {
        return None;
    }
    let mut i = 2;
    if kind == DdlKind::CreateDatabase && is(i, "IF") && is(i + 1, "NOT") && is(i + 2, "EXISTS") {
        i += 3;
    }
    if kind == DdlKind::DropDatabase && is(i, "IF") && is(i + 1, "EXISTS") {
        i += 2;
    }
    // ALTER DATABASE without a name alters the default database.
    const OPTION_WORDS: &[&str] = &[
        "DEFAULT",
        "CHARACTER",
        "CHARSET",
        "COLLATE",
        "COMMENT",
        "READ",
        "ENCRYPTION",
    ];
    let unnamed = kind == DdlKind::AlterDatabase
        && (words.get(i).is_none_or(|t| t.token == Token::EOF)
            || OPTION_WORDS.iter().any(|k| is(i, k)));
    // The options start right after the name (or where it would be): comments such as
    // mysqldump's `/*!40100 DEFAULT CHARACTER SET latin1 */` included.
    let (name, from) = if unnamed {
        let from = words
            .get(i)
            .filter(|t| t.token != Token::EOF)
            .map_or(sql.len(), |t| byte_offset(sql, t.span.start));
        (default_db.to_string(), from)
    } else {
        match word(i) {
            Some(w) => (w.value.clone(), byte_offset(sql, words[i].span.end)),
            None => return Some(Err("no database name".into())),
        }
    };
    if name.is_empty() {
        return Some(Err("no database named, and no default database".into()));
    }
    let options = sql[from.min(sql.len())..]
        .trim()
        .trim_end_matches(';')
        .trim_end()
        .to_string();
    if kind == DdlKind::DropDatabase && !options.is_empty() {
        return Some(Err(format!("unexpected `{options}` after the name")));
    }
    Some(Ok((kind, name, options)))
}

/// (name, definition) of each column of a `CREATE TABLE` statement, as `ADD COLUMN` takes
/// the definition.
pub fn column_definitions(create: &str) -> Result<Vec<(String, String)>, String> {
    let mut stmts = Parser::parse_sql(&MySqlDialect {}, create).map_err(|e| e.to_string())?;
    match stmts.pop() {
        Some(Statement::CreateTable(ct)) if stmts.is_empty() => Ok(ct
            .columns
            .iter()
            .map(|c| (c.name.value.clone(), c.to_string()))
            .collect()),
        _ => Err("not one CREATE TABLE statement".into()),
    }
}

/// Parses a QUERY event's statement run in `default_db`. `Ok(None)`: not a table DDL, nothing
/// to replicate or track. `Err`: a table DDL that could not be understood.
pub fn parse_ddl(default_db: &str, sql: &str) -> Result<Option<Ddl>, String> {
    if !is_table_ddl(sql) {
        return Ok(None);
    }
    if let Some(db) = database_ddl(default_db, sql) {
        let (kind, database, options) = db?;
        return Ok(Some(Ddl {
            kind,
            database: Some(database),
            tables: vec![],
            body: Body::Database { options },
            default_db: default_db.to_string(),
        }));
    }
    let mut stmts = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    if stmts.len() != 1 {
        return Err(format!("expected one statement, found {}", stmts.len()));
    }
    let statement = stmts.remove(0);
    let t = |n: &ObjectName| table_name(default_db, n);
    // Database statements were read above.
    let (kind, database, tables) = match &statement {
        Statement::CreateTable(ct) => {
            if ct.temporary {
                return Ok(None);
            }
            let mut tables = vec![t(&ct.name)];
            if let Some(CreateTableLikeKind::Plain(l) | CreateTableLikeKind::Parenthesized(l)) =
                &ct.like
            {
                tables.push(t(&l.name));
            }
            if ct.query.is_some() && ct.columns.is_empty() {
                return Err("CREATE TABLE ... SELECT without column definitions".into());
            }
            (DdlKind::CreateTable, None, tables)
        }
        Statement::AlterTable(AlterTable { name, .. }) => {
            (DdlKind::AlterTable, None, vec![t(name)])
        }
        Statement::Drop {
            object_type,
            names,
            table,
            temporary,
            ..
        } => match object_type {
            _ if *temporary => return Ok(None),
            ObjectType::Table => (DdlKind::DropTable, None, names.iter().map(t).collect()),
            ObjectType::Index => match table {
                Some(tb) => (DdlKind::DropIndex, None, vec![t(tb)]),
                None => return Err("DROP INDEX without ON <table>".into()),
            },
            _ => return Ok(None),
        },
        Statement::RenameTable(pairs) => (
            DdlKind::RenameTable,
            None,
            pairs
                .iter()
                .flat_map(|p| [t(&p.old_name), t(&p.new_name)])
                .collect(),
        ),
        Statement::Truncate(tr) => (
            DdlKind::TruncateTable,
            None,
            tr.table_names.iter().map(|x| t(&x.name)).collect(),
        ),
        Statement::CreateIndex(ci) => (DdlKind::CreateIndex, None, vec![t(&ci.table_name)]),
        other => {
            return Err(format!(
                "statement kind not handled: {}",
                other.to_string().chars().take(60).collect::<String>()
            ))
        }
    };
    Ok(Some(Ddl {
        kind,
        database,
        tables,
        body: Body::Table(Box::new(statement)),
        default_db: default_db.to_string(),
    }))
}

/// `INT UNSIGNED` -> ("int", true); `VARCHAR(10)` -> ("varchar", false).
fn column_type(dt: &DataType) -> (String, bool) {
    let text = dt.to_string().to_ascii_lowercase();
    let unsigned = text.contains("unsigned");
    let base: String = text.split(['(', ' ']).next().unwrap_or("").to_string();
    let base = match base.as_str() {
        "integer" => "int",
        "bool" | "boolean" => "tinyint",
        "numeric" | "dec" | "fixed" => "decimal",
        "real" => "double",
        "character" | "char" if text.contains("varying") => "varchar",
        "nchar" => "char",
        "nvarchar" => "varchar",
        other => other,
    }
    .to_string();
    (base, unsigned)
}

fn column_from_def(def: &ColumnDef) -> (Column, bool, bool) {
    let (data_type, unsigned) = column_type(&def.data_type);
    let members = match &def.data_type {
        DataType::Enum(members, _) => members
            .iter()
            .map(|m| match m {
                sqlparser::ast::EnumMember::Name(n)
                | sqlparser::ast::EnumMember::NamedValue(n, _) => n.clone(),
            })
            .collect(),
        DataType::Set(members) => members.clone(),
        _ => vec![],
    };
    let mut col = Column {
        name: def.name.value.clone(),
        data_type,
        unsigned,
        nullable: true,
        generated: false,
        members,
    };
    let (mut pk, mut uk) = (false, false);
    for opt in &def.options {
        match &opt.option {
            ColumnOption::NotNull => col.nullable = false,
            ColumnOption::Null => col.nullable = true,
            ColumnOption::PrimaryKey(_) => {
                pk = true;
                col.nullable = false;
            }
            ColumnOption::Unique(_) => uk = true,
            ColumnOption::Generated { .. } => col.generated = true,
            _ => {}
        }
    }
    (col, pk, uk)
}

fn index_column(ic: &IndexColumn) -> String {
    match &ic.column.expr {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(v) => v.last().map(|i| i.value.clone()).unwrap_or_default(),
        // A prefix index `name(10)` parses as a call.
        Expr::Function(f) => last_ident(&f.name),
        other => other.to_string().trim_matches('`').to_string(),
    }
}

/// A prefix index column `name(10)` (parsed as a call).
fn is_prefix(ic: &IndexColumn) -> bool {
    matches!(ic.column.expr, Expr::Function(_))
}

/// Remembers that key `name` has a prefix column.
fn note_prefix(table: &mut Table, name: &str, cols: &[IndexColumn]) {
    if cols.iter().any(is_prefix) && !table.prefixed_keys.iter().any(|k| k == name) {
        table.prefixed_keys.push(name.to_string());
    }
}

fn apply_constraint(table: &mut Table, c: &TableConstraint) {
    match c {
        TableConstraint::PrimaryKey(pk) => {
            note_prefix(table, "PRIMARY", &pk.columns);
            table.primary_key = pk.columns.iter().map(index_column).collect();
            for name in table.primary_key.clone() {
                if let Some(i) = table.column_index(&name) {
                    table.columns[i].nullable = false;
                }
            }
        }
        TableConstraint::Unique(u) => {
            let cols: Vec<String> = u.columns.iter().map(index_column).collect();
            let name = u
                .index_name
                .as_ref()
                .or(u.name.as_ref())
                .map(|i| i.value.clone())
                .unwrap_or_else(|| cols.first().cloned().unwrap_or_default());
            note_prefix(table, &name, &u.columns);
            table.unique_keys.push((name, cols));
        }
        _ => {}
    }
}

fn table_from_create(name: TableName, ct: &CreateTable) -> Table {
    let mut table = Table {
        name,
        columns: vec![],
        primary_key: vec![],
        unique_keys: vec![],
        prefixed_keys: vec![],
    };
    for def in &ct.columns {
        let (col, pk, uk) = column_from_def(def);
        if pk {
            table.primary_key = vec![col.name.clone()];
        }
        if uk {
            table
                .unique_keys
                .push((col.name.clone(), vec![col.name.clone()]));
        }
        table.columns.push(col);
    }
    for c in &ct.constraints {
        apply_constraint(&mut table, c);
    }
    table
}

fn place_column(table: &mut Table, col: Column, pos: &Option<MySQLColumnPosition>) {
    let at = match pos {
        None => table.columns.len(),
        Some(MySQLColumnPosition::First) => 0,
        Some(MySQLColumnPosition::After(a)) => table
            .column_index(&a.value)
            .map(|i| i + 1)
            .unwrap_or(table.columns.len()),
    };
    table.columns.insert(at, col);
}

fn alter(table: &mut Table, op: &AlterTableOperation) -> Result<(), String> {
    use AlterTableOperation as Op;
    match op {
        Op::AddColumn {
            column_def,
            column_position,
            if_not_exists,
            ..
        } => {
            if *if_not_exists && table.column_index(&column_def.name.value).is_some() {
                return Ok(());
            }
            let (col, pk, uk) = column_from_def(column_def);
            if pk {
                table.primary_key = vec![col.name.clone()];
            }
            if uk {
                table
                    .unique_keys
                    .push((col.name.clone(), vec![col.name.clone()]));
            }
            place_column(table, col, column_position);
        }
        Op::DropColumn { column_names, .. } => {
            for c in column_names {
                table.drop_column(&c.value);
            }
        }
        Op::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => change_column(
            table,
            &col_name.value,
            &col_name.value,
            data_type,
            options,
            column_position,
        )?,
        Op::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => change_column(
            table,
            &old_name.value,
            &new_name.value,
            data_type,
            options,
            column_position,
        )?,
        Op::RenameColumn {
            old_column_name,
            new_column_name,
        } => table.rename_column(&old_column_name.value, &new_column_name.value),
        Op::AddConstraint { constraint, .. } => apply_constraint(table, constraint),
        Op::DropPrimaryKey { .. } => table.primary_key.clear(),
        Op::DropIndex { name } => table
            .unique_keys
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name.value)),
        Op::DropConstraint { name, .. } => table
            .unique_keys
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name.value)),
        // Defaults, renames (handled by the caller), engine and other options leave the row
        // format alone.
        _ => {}
    }
    Ok(())
}

fn change_column(
    table: &mut Table,
    old: &str,
    new: &str,
    data_type: &DataType,
    options: &[ColumnOption],
    pos: &Option<MySQLColumnPosition>,
) -> Result<(), String> {
    let i = table
        .column_index(old)
        .ok_or_else(|| format!("column `{old}` is not in the tracked table {}", table.name))?;
    let def = ColumnDef {
        name: sqlparser::ast::Ident::new(new),
        data_type: data_type.clone(),
        options: options
            .iter()
            .map(|o| sqlparser::ast::ColumnOptionDef {
                name: None,
                option: o.clone(),
            })
            .collect(),
    };
    let (col, pk, uk) = column_from_def(&def);
    if old != new {
        table.rename_column(old, new);
    }
    if pk {
        table.primary_key = vec![col.name.clone()];
    }
    if uk {
        table
            .unique_keys
            .push((col.name.clone(), vec![col.name.clone()]));
    }
    if pos.is_some() {
        table.columns.remove(i);
        place_column(table, col, pos);
    } else {
        table.columns[i] = col;
    }
    Ok(())
}

/// TiDB DM's finer event names of one ALTER TABLE change, beyond `alter table` ("" where
/// there is none). DM names some changes by what they do to the data (`precision
/// decrease`); dm names a type change `modify column`.
fn change_event_names(op: &AlterTableOperation) -> [&'static str; 2] {
    use sqlparser::ast::{AlterColumnOperation, TableConstraint};
    match op {
        AlterTableOperation::AddColumn { .. } => ["add column", ""],
        AlterTableOperation::DropColumn { .. } => ["drop column", ""],
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            column_position,
            ..
        } => [
            "modify column",
            if !old_name.value.eq_ignore_ascii_case(&new_name.value) {
                "rename column"
            } else if column_position.is_some() {
                "modify columns order"
            } else {
                ""
            },
        ],
        AlterTableOperation::ModifyColumn {
            column_position, ..
        } => [
            "modify column",
            if column_position.is_some() {
                "modify columns order"
            } else {
                ""
            },
        ],
        AlterTableOperation::RenameColumn { .. } => ["rename column", ""],
        AlterTableOperation::RenameTable { .. } => ["rename table", ""],
        AlterTableOperation::AlterColumn { op, .. } => match op {
            AlterColumnOperation::SetDefault { .. } => {
                ["modify default value", "set default value"]
            }
            AlterColumnOperation::DropDefault => ["modify default value", ""],
            _ => ["modify column", ""],
        },
        AlterTableOperation::AddConstraint { constraint, .. } => [
            "modify constraint",
            match constraint {
                TableConstraint::PrimaryKey(_) => "add primary key",
                TableConstraint::ForeignKey(_) => "add foreign key",
                _ => "",
            },
        ],
        AlterTableOperation::DropPrimaryKey { .. } => ["drop primary key", ""],
        AlterTableOperation::DropForeignKey { .. } => ["drop foreign key", ""],
        AlterTableOperation::DropIndex { .. } | AlterTableOperation::DropConstraint { .. } => {
            ["drop index", ""]
        }
        AlterTableOperation::AddPartitions { .. } => ["add table partition", ""],
        AlterTableOperation::DropPartitions { .. } => ["drop table partition", ""],
        AlterTableOperation::AutoIncrement { .. } => ["rebase auto id", ""],
        other => {
            // Table options and the rarer changes, by their words.
            let text = other.to_string().to_ascii_uppercase();
            let has = |w: &str| text.contains(w);
            let name = if has("RENAME INDEX") || has("RENAME KEY") {
                "rename index"
            } else if has("TRUNCATE PARTITION") {
                "truncate table partition"
            } else if has("REORGANIZE PARTITION") {
                "reorganize table partition"
            } else if has("REBUILD PARTITION") {
                "rebuild table partition"
            } else if has("COALESCE PARTITION") {
                "coalesce table partition"
            } else if has("EXCHANGE PARTITION") {
                "exchange table partition"
            } else if has("REMOVE PARTITIONING") {
                "remove table partitioning"
            } else if has("PARTITION BY") {
                "alter table partitioning"
            } else if has("ENGINE") {
                "modify storage engine"
            } else if has("COLLATE") {
                "modify collation"
            } else if has("CHARACTER SET") || has("CHARSET") {
                "modify charset"
            } else if has("COMMENT") {
                "modify table comment"
            } else {
                ""
            };
            [name, ""]
        }
    }
}

impl Ddl {
    /// For an ALTER TABLE: TiDB DM's finer event names of each change, in order.
    pub fn alter_changes(&self) -> Option<Vec<[&'static str; 2]>> {
        let Body::Table(stmt) = &self.body else {
            return None;
        };
        let Statement::AlterTable(alter) = &**stmt else {
            return None;
        };
        Some(alter.operations.iter().map(change_event_names).collect())
    }

    /// The statement with its table renamed to `to`, for statements on one table whose
    /// meaning does not depend on the name (ALTER TABLE; CREATE TABLE, made IF NOT EXISTS).
    /// `None` for the others.
    pub fn renamed_to(&self, to: &TableName) -> Option<String> {
        let name = ObjectName::from(vec![
            sqlparser::ast::Ident::with_quote('`', to.schema.clone()),
            sqlparser::ast::Ident::with_quote('`', to.table.clone()),
        ]);
        let Body::Table(stmt) = &self.body else {
            return None;
        };
        let mut stmt = (**stmt).clone();
        match &mut stmt {
            Statement::AlterTable(a) => a.name = name,
            Statement::CreateTable(c) if c.like.is_none() && c.query.is_none() => {
                c.name = name;
                c.if_not_exists = true;
            }
            _ => return None,
        }
        Some(stmt.to_string())
    }

    /// An ALTER TABLE as one statement per change, each on the table `to` (`ADD COLUMN a,
    /// DROP COLUMN b` -> two statements), as TiDB DM splits them for shard coordination.
    pub fn split_renamed_to(&self, to: &TableName) -> Option<Vec<String>> {
        let Body::Table(stmt) = &self.body else {
            return None;
        };
        let Statement::AlterTable(alter) = &**stmt else {
            return None;
        };
        if alter.operations.len() < 2 {
            return self.renamed_to(to).map(|s| vec![s]);
        }
        alter
            .operations
            .iter()
            .map(|op| {
                let mut one = self.clone();
                if let Body::Table(s) = &mut one.body {
                    if let Statement::AlterTable(a) = &mut **s {
                        a.operations = vec![op.clone()];
                    }
                }
                one.renamed_to(to)
            })
            .collect()
    }

    /// A database statement for the target database `to`, safe to run again after a
    /// restart (`IF [NOT] EXISTS`); the source's options kept as written.
    pub fn database_statement_for(&self, to: &str) -> Option<String> {
        let Body::Database { options } = &self.body else {
            return None;
        };
        let name = crate::db::quote_ident(to);
        let sql = match self.kind {
            DdlKind::CreateDatabase => format!("CREATE DATABASE IF NOT EXISTS {name} {options}"),
            DdlKind::AlterDatabase => format!("ALTER DATABASE {name} {options}"),
            DdlKind::DropDatabase => format!("DROP DATABASE IF EXISTS {name}"),
            _ => return None,
        };
        Some(sql.trim_end().to_string())
    }

    /// The database the statement ran in; the target runs it there too.
    pub fn default_db(&self) -> &str {
        &self.default_db
    }

    /// Applies the statement to the tracked model.
    pub fn apply(&self, tracker: &mut super::Tracker) -> Result<(), String> {
        let t = |n: &ObjectName| table_name(&self.default_db, n);
        let stmt = match &self.body {
            Body::Table(stmt) => &**stmt,
            Body::Database { .. } => {
                if let (DdlKind::DropDatabase, Some(db)) = (self.kind, &self.database) {
                    tracker.drop_schema(db);
                }
                return Ok(());
            }
        };
        match stmt {
            Statement::CreateTable(ct) => {
                let name = t(&ct.name);
                if ct.if_not_exists && tracker.get(&name).is_some() {
                    return Ok(());
                }
                let table = match &ct.like {
                    Some(CreateTableLikeKind::Plain(l) | CreateTableLikeKind::Parenthesized(l)) => {
                        let mut like = tracker.get(&t(&l.name)).cloned().ok_or_else(|| {
                            format!("CREATE TABLE LIKE an untracked table {}", t(&l.name))
                        })?;
                        like.name = name;
                        like
                    }
                    _ => table_from_create(name, ct),
                };
                tracker.insert(table);
            }
            Statement::AlterTable(AlterTable {
                name, operations, ..
            }) => {
                let name = t(name);
                let mut table = tracker
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| format!("ALTER TABLE of an untracked table {name}"))?;
                let mut new_name = None;
                for op in operations {
                    if let AlterTableOperation::RenameTable { table_name } = op {
                        let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
                        new_name = Some(t(n));
                    }
                    alter(&mut table, op)?;
                }
                tracker.remove(&name);
                if let Some(n) = new_name {
                    table.name = n;
                }
                tracker.insert(table);
            }
            Statement::Drop { .. } if self.kind == DdlKind::DropTable => {
                for name in &self.tables {
                    tracker.remove(name);
                }
            }
            Statement::Drop { names, .. } if self.kind == DdlKind::DropIndex => {
                if let (Some(table), Some(idx)) = (self.tables.first(), names.first()) {
                    if let Some(mut tb) = tracker.get(table).cloned() {
                        let idx = last_ident(idx);
                        tb.unique_keys
                            .retain(|(n, _)| !n.eq_ignore_ascii_case(&idx));
                        if idx.eq_ignore_ascii_case("primary") {
                            tb.primary_key.clear();
                        }
                        tracker.insert(tb);
                    }
                }
            }
            Statement::RenameTable(_) => {
                for pair in self.tables.chunks(2) {
                    tracker.rename(&pair[0], &pair[1]);
                }
            }
            Statement::CreateIndex(ci) if ci.unique => {
                let name = t(&ci.table_name);
                if let Some(mut tb) = tracker.get(&name).cloned() {
                    let cols = ci.columns.iter().map(index_column).collect();
                    let idx = ci.name.as_ref().map(last_ident).unwrap_or_default();
                    note_prefix(&mut tb, &idx, &ci.columns);
                    tb.unique_keys.push((idx, cols));
                    tracker.insert(tb);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Tracker;

    fn run(tracker: &mut Tracker, sql: &str) {
        let ddl = parse_ddl("db", sql).unwrap().expect("a DDL");
        ddl.apply(tracker).unwrap();
    }

    #[test]
    fn alter_changes_have_tidb_dm_finer_names() {
        let changes = |sql: &str| {
            parse_ddl("db", sql)
                .unwrap()
                .expect("a DDL")
                .alter_changes()
                .unwrap()
        };
        assert_eq!(
            changes(
                "ALTER TABLE t ADD COLUMN a INT, DROP COLUMN b, ADD PRIMARY KEY (id), DROP INDEX i"
            ),
            vec![
                ["add column", ""],
                ["drop column", ""],
                ["modify constraint", "add primary key"],
                ["drop index", ""]
            ]
        );
        assert_eq!(
            changes(
                "ALTER TABLE t CHANGE a b INT, MODIFY c BIGINT FIRST, ALTER COLUMN d SET DEFAULT 1"
            ),
            vec![
                ["modify column", "rename column"],
                ["modify column", "modify columns order"],
                ["modify default value", "set default value"]
            ]
        );
        assert!(parse_ddl("db", "DROP TABLE t")
            .unwrap()
            .unwrap()
            .alter_changes()
            .is_none());
    }

    #[test]
    fn not_ddl_is_passed_over() {
        for sql in [
            "BEGIN",
            "COMMIT",
            "GRANT ALL ON *.* TO x",
            "CREATE USER x",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "DROP TRIGGER tr",
            "CREATE DEFINER=`root`@`%` PROCEDURE p() BEGIN END",
            "FLUSH PRIVILEGES",
        ] {
            assert!(parse_ddl("db", sql).unwrap().is_none(), "{sql}");
        }
    }

    #[test]
    fn create_alter_rename_drop() {
        let mut tr = Tracker::default();
        run(
            &mut tr,
            "CREATE TABLE `t` (\n  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `name` varchar(20) CHARACTER SET latin1 DEFAULT NULL,\n  `j` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`j`)),\n  `e` enum('a','b') DEFAULT 'a',\n  `ts` timestamp(6) NOT NULL DEFAULT current_timestamp(6) ON UPDATE current_timestamp(6),\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uk_name` (`name`(10)),\n  KEY `k` (`e`)\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
        );
        let t = tr.get(&TableName::new("db", "t")).unwrap();
        assert_eq!(t.columns.len(), 5);
        assert!(t.columns[0].unsigned && t.columns[0].data_type == "bigint");
        assert_eq!(t.columns[4].data_type, "timestamp");
        assert_eq!(t.primary_key, vec!["id"]);
        assert_eq!(t.unique_keys[0].1, vec!["name"]);

        run(&mut tr, "ALTER TABLE t ADD COLUMN c2 INT UNSIGNED NOT NULL DEFAULT 0 AFTER id, DROP COLUMN e, MODIFY name VARCHAR(40), CHANGE ts ts2 DATETIME(6) FIRST");
        let t = tr.get(&TableName::new("db", "t")).unwrap();
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ts2", "id", "c2", "name", "j"]);
        assert!(t.columns[2].unsigned);

        run(
            &mut tr,
            "ALTER TABLE db.t DROP INDEX uk_name, DROP PRIMARY KEY, ADD PRIMARY KEY (c2, id)",
        );
        let t = tr.get(&TableName::new("db", "t")).unwrap();
        assert!(t.unique_keys.is_empty());
        assert_eq!(t.primary_key, vec!["c2", "id"]);

        run(&mut tr, "CREATE UNIQUE INDEX u2 ON t (name)");
        run(&mut tr, "RENAME TABLE t TO t2");
        assert!(tr.get(&TableName::new("db", "t")).is_none());
        assert_eq!(
            tr.get(&TableName::new("db", "t2"))
                .unwrap()
                .unique_keys
                .len(),
            1
        );
        run(&mut tr, "DROP INDEX u2 ON t2");
        assert!(tr
            .get(&TableName::new("db", "t2"))
            .unwrap()
            .unique_keys
            .is_empty());
        run(&mut tr, "ALTER TABLE t2 RENAME TO other.t3");
        assert!(tr.get(&TableName::new("other", "t3")).is_some());
        run(
            &mut tr,
            "DROP TABLE IF EXISTS `other`.`t3` /* generated by server */",
        );
        assert!(tr.get(&TableName::new("other", "t3")).is_none());
    }

    #[test]
    fn table_ddl_the_parser_does_not_know() {
        assert!(parse_ddl("db", "ALTER TABLE t ENGINE=InnoDB").is_err());
        let alter = |t: TableName| Some((t, DdlKind::AlterTable));
        assert_eq!(
            unparsed_table_ddl("db", "ALTER TABLE `s`.`t` CONVERT TO CHARACTER SET latin1"),
            alter(TableName::new("s", "t"))
        );
        assert_eq!(
            unparsed_table_ddl("db", "alter online table t force"),
            alter(TableName::new("db", "t"))
        );
        assert_eq!(
            unparsed_table_ddl(
                "db",
                "CREATE TABLE IF NOT EXISTS s.p (a INT) PARTITION BY HASH (a)"
            ),
            Some((TableName::new("s", "p"), DdlKind::CreateTable))
        );
        for refused in [
            "CREATE TABLE t (a INT) WITH SYSTEM VERSIONING",
            "CREATE TABLE t (a INT) PARTITION BY HASH (a) SELECT 1 AS a",
            "CREATE TEMPORARY TABLE t (a INT) PARTITION BY HASH (a)",
        ] {
            assert_eq!(unparsed_table_ddl("db", refused), None, "{refused}");
        }
    }

    #[test]
    fn kinds_and_tables() {
        let d = parse_ddl("db", "TRUNCATE TABLE x").unwrap().unwrap();
        assert_eq!(d.kind, DdlKind::TruncateTable);
        assert_eq!(d.tables, vec![TableName::new("db", "x")]);
        let d = parse_ddl("", "CREATE DATABASE IF NOT EXISTS shop")
            .unwrap()
            .unwrap();
        assert_eq!(d.database.as_deref(), Some("shop"));
        let d = parse_ddl("", "DROP DATABASE shop").unwrap().unwrap();
        assert_eq!(d.kind, DdlKind::DropDatabase);
    }

    #[test]
    fn column_definitions_of_a_create_table() {
        let defs = column_definitions(
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `extra` varchar(10) DEFAULT 'a''b' COMMENT 'x',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        )
        .unwrap();
        assert_eq!(defs[1].0, "extra");
        assert_eq!(defs[1].1, "`extra` VARCHAR(10) DEFAULT 'a''b' COMMENT 'x'");
    }

    #[test]
    fn a_mixed_alter_splits_into_one_statement_per_change() {
        let d = parse_ddl(
            "db",
            "ALTER TABLE t ADD COLUMN c4 INT DEFAULT 1, DROP COLUMN c3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            d.split_renamed_to(&TableName::new("m", "o")).unwrap(),
            [
                "ALTER TABLE `m`.`o` ADD COLUMN c4 INT DEFAULT 1",
                "ALTER TABLE `m`.`o` DROP COLUMN c3"
            ]
        );
    }

    #[test]
    fn database_statements_keep_their_options() {
        let db = |default_db: &str, sql: &str, to: &str| {
            let d = parse_ddl(default_db, sql).unwrap().unwrap();
            (
                d.kind,
                d.database.clone().unwrap(),
                d.database_statement_for(to).unwrap(),
            )
        };
        assert_eq!(
            db("", "ALTER DATABASE gbk3 CHARSET gbk", "t"),
            (
                DdlKind::AlterDatabase,
                "gbk3".into(),
                "ALTER DATABASE `t` CHARSET gbk".into()
            )
        );
        assert_eq!(
            db("cur", "alter schema collate = utf8mb4_bin;", "cur").2,
            "ALTER DATABASE `cur` collate = utf8mb4_bin"
        );
        assert_eq!(
            db("cur", "ALTER DATABASE DEFAULT CHARSET latin1", "x").1,
            "cur"
        );
        assert_eq!(
            db("", "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a b` /*!40100 DEFAULT CHARACTER SET latin1 */", "t"),
            (
                DdlKind::CreateDatabase,
                "a b".into(),
                "CREATE DATABASE IF NOT EXISTS `t` /*!40100 DEFAULT CHARACTER SET latin1 */".into()
            )
        );
        assert_eq!(
            db(
                "",
                "CREATE SCHEMA IF NOT EXISTS s\nDEFAULT CHARACTER SET = 'utf8mb4' COMMENT 'é''s'",
                "s"
            )
            .2,
            "CREATE DATABASE IF NOT EXISTS `s` DEFAULT CHARACTER SET = 'utf8mb4' COMMENT 'é''s'"
        );
        assert_eq!(
            db("", "DROP SCHEMA IF EXISTS x", "y"),
            (
                DdlKind::DropDatabase,
                "x".into(),
                "DROP DATABASE IF EXISTS `y`".into()
            )
        );
        assert!(
            parse_ddl("", "ALTER DATABASE CHARSET gbk").is_err(),
            "no database"
        );
        assert!(parse_ddl("", "DROP DATABASE x y").is_err());
    }
}
