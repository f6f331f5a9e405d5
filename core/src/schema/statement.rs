//! What a QUERY event's statement that is not table DDL means for the migration: nothing
//! (a documented list of statements that change no migrated row or table), row changes
//! written as a statement (statement- or mixed-format binlog), or something dm cannot judge.
//! The dispatcher pauses the task on the last two unless a rule of the task filters them
//! out: a statement is never passed over because dm did not understand it.

use crate::table::TableName;
use sqlparser::ast::{FromTable, ObjectName, Statement, TableFactor, TableObject, TableWithJoins};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementClass {
    /// Changes no table or row dm migrates; the reason, for the log and the docs.
    Irrelevant(&'static str),
    /// Writes rows: how, and the tables it may write (empty when they cannot be told).
    Dml {
        verb: DmlVerb,
        tables: Vec<TableName>,
    },
    /// dm cannot tell what it changes.
    Unknown,
}

/// The kind of row change a DML statement makes, as event filters name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmlVerb {
    /// INSERT or REPLACE.
    Insert,
    Update,
    Delete,
    /// LOAD DATA, CALL, DO, HANDLER: their changes cannot be told from the statement.
    Other,
}

/// Object kinds whose CREATE/ALTER/DROP change no migrated table: dm migrates tables and
/// their rows (rows a trigger or routine writes reach the binlog as rows of their tables).
const OTHER_OBJECTS: &[(&str, &str)] = &[
    ("VIEW", "views are not migrated"),
    (
        "TRIGGER",
        "triggers are not migrated (their row changes are)",
    ),
    ("PROCEDURE", "stored routines are not migrated"),
    ("FUNCTION", "stored routines are not migrated"),
    ("AGGREGATE", "stored routines are not migrated"),
    ("PACKAGE", "stored routines are not migrated"),
    (
        "EVENT",
        "scheduled events are not migrated (their row changes are)",
    ),
    ("USER", "accounts are not migrated"),
    ("ROLE", "accounts are not migrated"),
    ("SERVER", "federated server definitions are not migrated"),
    ("TABLESPACE", "tablespaces are not migrated"),
    ("LOGFILE", "tablespaces are not migrated"),
    (
        "TEMPORARY",
        "temporary tables are not migrated (statements that copy their rows into tables are DML)",
    ),
];

/// Object kinds that are tables or databases: a statement on them is DDL dm handles, never
/// irrelevant.
const TABLE_OBJECTS: &[&str] = &[
    "TABLE", "TABLES", "DATABASE", "SCHEMA", "INDEX", "UNIQUE", "FULLTEXT", "SPATIAL", "SEQUENCE",
];

/// Unquoted words of a statement, upper-cased, with `None` for other tokens; comments and
/// whitespace skipped. `None` when it does not tokenize.
fn words(sql: &str) -> Option<Vec<Option<String>>> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
            .map(|t| match t {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect(),
    )
}

/// Classifies a statement that `parse_ddl` found not to be table DDL, run in `default_db`.
pub fn classify_statement(default_db: &str, sql: &str) -> StatementClass {
    let Some(w) = words(sql) else {
        return StatementClass::Unknown;
    };
    let word = |i: usize| w.get(i).cloned().flatten().unwrap_or_default();
    let first = match w.first() {
        // Only comments: MariaDB's "# Dummy event replacing event type ..." and the like.
        None => return StatementClass::Irrelevant("no statement"),
        Some(None) => return StatementClass::Unknown,
        Some(Some(f)) => f.as_str(),
    };
    match first {
        "BEGIN" | "COMMIT" | "SAVEPOINT" | "RELEASE" => {
            StatementClass::Irrelevant("transaction control")
        }
        // Rolled-back changes are not in the binlog; ROLLBACK TO SAVEPOINT cuts them out.
        "ROLLBACK" => StatementClass::Irrelevant("transaction control"),
        "GRANT" | "REVOKE" => StatementClass::Irrelevant("accounts are not migrated"),
        "SET" if matches!(word(1).as_str(), "PASSWORD" | "DEFAULT" | "ROLE") => {
            StatementClass::Irrelevant("accounts are not migrated")
        }
        "FLUSH" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "CHECK" | "CHECKSUM" => {
            StatementClass::Irrelevant("table maintenance changes no rows")
        }
        "INSTALL" | "UNINSTALL" => StatementClass::Irrelevant("server plugins are not migrated"),
        "CREATE" | "ALTER" | "DROP" | "RENAME" => {
            // The object kind: the first unquoted word that names one (modifiers such as
            // OR REPLACE, DEFINER = ..., ALGORITHM = ..., SQL SECURITY come before it).
            for x in w.iter().skip(1).flatten() {
                if TABLE_OBJECTS.contains(&x.as_str()) {
                    return StatementClass::Unknown;
                }
                if let Some((_, why)) = OTHER_OBJECTS.iter().find(|(o, _)| o == x) {
                    return StatementClass::Irrelevant(why);
                }
            }
            StatementClass::Unknown
        }
        "INSERT" | "REPLACE" | "UPDATE" | "DELETE" | "LOAD" | "CALL" | "DO" | "HANDLER" => {
            StatementClass::Dml {
                verb: match first {
                    "INSERT" | "REPLACE" => DmlVerb::Insert,
                    "UPDATE" => DmlVerb::Update,
                    "DELETE" => DmlVerb::Delete,
                    _ => DmlVerb::Other,
                },
                tables: written_tables(default_db, sql),
            }
        }
        _ => StatementClass::Unknown,
    }
}

/// Whether `binlog replace` / `binlog inject` can run `sql` for a user: one table DDL
/// statement (run as the source's own: filtered, routed, tracked), or one INSERT, REPLACE,
/// UPDATE or DELETE that names the database of every table (run on the target as written).
pub fn check_operator_statement(sql: &str) -> Result<(), String> {
    match super::parse_ddl("", sql) {
        Ok(Some(_)) => return Ok(()),
        Err(e) if super::unparsed_table_ddl("", sql).is_none() => {
            return Err(format!("`{sql}` is not a DDL dm can run: {e}"))
        }
        Err(_) => return Ok(()),
        Ok(None) => {}
    }
    let tables = match classify_statement("", sql) {
        StatementClass::Dml { verb, tables } if verb != DmlVerb::Other => tables,
        _ => {
            return Err(format!(
                "`{sql}` is neither table DDL nor INSERT, REPLACE, UPDATE or DELETE: only those can be run for a transaction"
            ))
        }
    };
    match Parser::parse_sql(&MySqlDialect {}, sql).map(|s| s.len()) {
        Err(e) => Err(format!("`{sql}` does not parse: {e}")),
        Ok(n) if n != 1 => Err(format!(
            "`{sql}` holds {n} statements: give each as its own argument"
        )),
        Ok(_) if tables.is_empty() || tables.iter().any(|t| t.schema.is_empty()) => Err(format!(
            "`{sql}`: name every table with its database (`db`.`table`); DML runs on the target as written"
        )),
        Ok(_) => Ok(()),
    }
}

/// Tables a DML statement may write; empty when it does not parse.
fn written_tables(default_db: &str, sql: &str) -> Vec<TableName> {
    let Ok(stmts) = Parser::parse_sql(&MySqlDialect {}, sql) else {
        return vec![];
    };
    let name = |n: &ObjectName| super::ddl::table_name(default_db, n);
    let mut out = Vec::new();
    for s in &stmts {
        match s {
            Statement::Insert(i) => match &i.table {
                TableObject::TableName(n) => out.push(name(n)),
                _ => return vec![],
            },
            Statement::Update(u) => joined_tables(&u.table, &mut out, &name),
            Statement::Delete(d) => {
                out.extend(d.tables.iter().map(name));
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from {
                    joined_tables(t, &mut out, &name);
                }
            }
            _ => return vec![],
        }
    }
    out
}

fn joined_tables(
    t: &TableWithJoins,
    out: &mut Vec<TableName>,
    name: &impl Fn(&ObjectName) -> TableName,
) {
    for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
        if let TableFactor::Table { name: n, .. } = f {
            out.push(name(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> TableName {
        TableName::new(s, n)
    }

    /// The documented table of statements (docs/architecture.md, "Events dm does not apply").
    #[test]
    fn every_kind_of_statement_is_classified() {
        use StatementClass::*;
        let irrelevant = [
            "# Dummy event replacing event type 160 that slave cannot handle.",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "ROLLBACK TO SAVEPOINT a",
            "SAVEPOINT a",
            "GRANT SELECT ON *.* TO 'u'@'%'",
            "REVOKE ALL ON *.* FROM 'u'@'%'",
            "CREATE USER 'u'@'%' IDENTIFIED BY 'x'",
            "DROP USER IF EXISTS 'u'@'%'",
            "RENAME USER 'a'@'%' TO 'b'@'%'",
            "SET PASSWORD FOR 'u'@'%' = PASSWORD('x')",
            "CREATE ROLE r",
            "FLUSH PRIVILEGES",
            "ANALYZE TABLE t",
            "OPTIMIZE TABLE t",
            "CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT 1",
            "CREATE OR REPLACE ALGORITHM=MERGE VIEW v AS SELECT * FROM t",
            "DROP VIEW IF EXISTS v",
            "CREATE DEFINER=`table`@`%` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            "DROP TRIGGER tr",
            "CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); END",
            "DROP FUNCTION IF EXISTS f",
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t",
            "CREATE TEMPORARY TABLE tmp (a INT)",
            "DROP TEMPORARY TABLE IF EXISTS tmp",
            "INSTALL SONAME 'ha_blackhole'",
        ];
        for sql in irrelevant {
            assert!(
                matches!(classify_statement("db", sql), Irrelevant(_)),
                "{sql}"
            );
        }
        use DmlVerb::*;
        let dml = [
            ("INSERT INTO t VALUES (1)", Insert, vec![t("db", "t")]),
            (
                "insert into x.t select * from y.u",
                Insert,
                vec![t("x", "t")],
            ),
            (
                "REPLACE INTO `a`.`b` (id) VALUES (2)",
                Insert,
                vec![t("a", "b")],
            ),
            (
                "/* c */ UPDATE t SET a = a + 1 WHERE id < 3",
                Update,
                vec![t("db", "t")],
            ),
            (
                "UPDATE a JOIN o.b ON a.id = b.id SET a.x = b.x",
                Update,
                vec![t("db", "a"), t("o", "b")],
            ),
            ("DELETE FROM t WHERE id = 1", Delete, vec![t("db", "t")]),
            (
                "DELETE a FROM a JOIN b ON a.id = b.id",
                Delete,
                vec![t("db", "a"), t("db", "a"), t("db", "b")],
            ),
            ("LOAD DATA INFILE '/x' INTO TABLE t", Other, vec![]),
            ("CALL p()", Other, vec![]),
        ];
        for (sql, verb, tables) in dml {
            assert_eq!(
                classify_statement("db", sql),
                StatementClass::Dml { verb, tables },
                "{sql}"
            );
        }
        let unknown = [
            "XA START 'x'",
            "SET STATEMENT max_statement_time=1 FOR INSERT INTO t VALUES (1)",
            "CREATE SEQUENCE s",
            "CREATE TABLE `trigger` (a INT)",
            "SOMETHING NEW",
        ];
        for sql in unknown {
            assert_eq!(classify_statement("db", sql), Unknown, "{sql}");
        }
    }

    #[test]
    fn operators_run_only_single_ddl_or_qualified_dml() {
        for ok in [
            "ALTER TABLE db.t ADD COLUMN c INT",
            "ALTER TABLE db.t ENGINE = InnoDB",
            "INSERT INTO db.t VALUES (1)",
            "UPDATE db.t SET a = 1 WHERE id = 2",
            "DELETE FROM `db`.`t` WHERE id = 3",
            "REPLACE INTO db.t (id) VALUES (4)",
        ] {
            assert_eq!(check_operator_statement(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("INSERT INTO t VALUES (1)", "database"),
            (
                "INSERT INTO db.t VALUES (1); DROP DATABASE x",
                "2 statements",
            ),
            ("SELECT 1", "neither"),
            ("GRANT ALL ON *.* TO x", "neither"),
            ("ALTER TABLE db.t ADD COLUMN c INT; DROP TABLE db.u", "DDL"),
        ] {
            let e = check_operator_statement(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
