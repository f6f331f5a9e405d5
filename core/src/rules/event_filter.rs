//! Binlog event filters (TiDB DM's `filters`): rules over schema/table patterns that ignore
//! kinds of events (`events`) or statements (`sql-pattern`), keep only them (`Do`), or refuse
//! them so that the task pauses (`Error`). When several rules match a table: Error wins over
//! Ignore, and a table with `Do` rules keeps only the events one of them names.

use crate::config::Pattern;
use crate::config::{FilterAction, FilterRule};
use regex::Regex;

/// What happens to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
    /// Refused by the named rule.
    Refuse(String),
}

/// The kind of an event, as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Insert,
    Update,
    Delete,
    /// A DDL statement, by its event name (`create table`, `drop index`, ...).
    Ddl(&'static str),
    /// One change of an ALTER TABLE: `alter table` and its finer names (`drop column`,
    /// `add primary key`, ...; "" where there is none).
    AlterChange([&'static str; 2]),
}

/// TiDB DM's `ddl` class; every other DDL name is an "incompatible ddl change".
const COMPATIBLE_DDL: &[&str] = &[
    "create database",
    "alter database",
    "create table",
    "create index",
    "create view",
    "drop view",
    "alter table",
    "add table partition",
];

impl EventKind {
    fn is_dml(self) -> bool {
        matches!(
            self,
            EventKind::Insert | EventKind::Update | EventKind::Delete
        )
    }

    /// For messages: its most precise name.
    pub fn name(self) -> &'static str {
        self.names().last().expect("every event has a name")
    }

    /// Every name a rule may call this event by.
    fn names(self) -> Vec<&'static str> {
        match self {
            EventKind::Insert => vec!["insert"],
            EventKind::Update => vec!["update"],
            EventKind::Delete => vec!["delete"],
            EventKind::Ddl(n) => vec![n],
            EventKind::AlterChange(finer) => std::iter::once("alter table")
                .chain(finer.into_iter().filter(|n| !n.is_empty()))
                .collect(),
        }
    }
}

/// TiDB DM's aliases, as the name they stand for.
fn canonical_event(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "create schema" => "create database".into(),
        "drop schema" => "drop database".into(),
        "alter schema" => "alter database".into(),
        _ => name,
    }
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    schema: Pattern,
    table: Option<Pattern>,
    events: Vec<String>,
    sql: Vec<Regex>,
    action: FilterAction,
}

impl Rule {
    /// As in TiDB DM, a schema-level event (CREATE/DROP/ALTER DATABASE) has the empty table
    /// name: a table pattern that matches it (`*`) takes the event too.
    fn applies_to(&self, schema: &str, table: Option<&str>) -> bool {
        self.schema.matches(schema)
            && match &self.table {
                Some(p) => p.matches(table.unwrap_or("")),
                None => true,
            }
    }

    /// The rule names this event or statement.
    fn names(&self, kind: EventKind, sql: Option<&str>) -> bool {
        self.names_event(kind) || sql.is_some_and(|s| self.sql.iter().any(|r| r.is_match(s)))
    }

    /// As TiDB DM reads `events`, in order: `none` (or `none ddl`/`none dml` for its class)
    /// ends the list unmatched.
    fn names_event(&self, kind: EventKind) -> bool {
        let dml = kind.is_dml();
        let names = kind.names();
        for e in &self.events {
            match e.as_str() {
                "all" => return true,
                "none" => return false,
                "all dml" if dml => return true,
                "none dml" if dml => return false,
                "all ddl" if !dml => return true,
                "none ddl" if !dml => return false,
                "incompatible ddl changes"
                    if !dml && names.iter().any(|n| !COMPATIBLE_DDL.contains(n)) =>
                {
                    return true
                }
                e if names.contains(&e) => return true,
                _ => {}
            }
        }
        false
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    rules: Vec<Rule>,
}

impl EventFilter {
    /// Patterns, events and regexes were validated when the task file was parsed.
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a String, &'a FilterRule)>,
        case_sensitive: bool,
    ) -> Self {
        let rules = rules
            .into_iter()
            .filter_map(|(name, r)| {
                Some(Rule {
                    name: name.clone(),
                    schema: Pattern::with_case(&r.schema_pattern, case_sensitive).ok()?,
                    table: match &r.table_pattern {
                        Some(t) => Some(Pattern::with_case(t, case_sensitive).ok()?),
                        None => None,
                    },
                    events: r.events.iter().map(|e| canonical_event(e)).collect(),
                    sql: r
                        .sql_pattern
                        .iter()
                        .filter_map(|p| Regex::new(p).ok())
                        .collect(),
                    action: r.action,
                })
            })
            .collect();
        EventFilter { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What to do with an event of `kind` on `schema`.`table` (`sql`: the statement, for DDL).
    pub fn check(
        &self,
        schema: &str,
        table: Option<&str>,
        kind: EventKind,
        sql: Option<&str>,
    ) -> Verdict {
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(schema, table))
            .collect();
        if let Some(r) = matching
            .iter()
            .find(|r| r.action == FilterAction::Error && r.names(kind, sql))
        {
            return Verdict::Refuse(r.name.clone());
        }
        if matching
            .iter()
            .any(|r| r.action == FilterAction::Ignore && r.names(kind, sql))
        {
            return Verdict::Drop;
        }
        let mut dos = matching
            .iter()
            .filter(|r| r.action == FilterAction::Do)
            .peekable();
        if dos.peek().is_some() && !dos.any(|r| r.names(kind, sql)) {
            return Verdict::Drop;
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        schema: &str,
        table: Option<&str>,
        events: &[&str],
        sql: &[&str],
        action: FilterAction,
    ) -> FilterRule {
        FilterRule {
            schema_pattern: schema.into(),
            table_pattern: table.map(Into::into),
            events: events.iter().map(|s| s.to_string()).collect(),
            sql_pattern: sql.iter().map(|s| s.to_string()).collect(),
            action,
        }
    }

    #[test]
    fn ignore_do_and_error() {
        let rules = [
            (
                "no-deletes".to_string(),
                rule(
                    "shop",
                    Some("orders"),
                    &["delete"],
                    &[],
                    FilterAction::Ignore,
                ),
            ),
            (
                "only-inserts".to_string(),
                rule("log*", None, &["insert", "all ddl"], &[], FilterAction::Do),
            ),
            (
                "no-truncate".to_string(),
                rule("*", None, &[], &["(?i)^TRUNCATE"], FilterAction::Error),
            ),
        ];
        let f = EventFilter::new(rules.iter().map(|(n, r)| (n, r)), false);
        assert_eq!(
            f.check("shop", Some("orders"), EventKind::Delete, None),
            Verdict::Drop
        );
        assert_eq!(
            f.check("shop", Some("orders"), EventKind::Update, None),
            Verdict::Keep
        );
        assert_eq!(
            f.check("shop", Some("items"), EventKind::Delete, None),
            Verdict::Keep
        );
        assert_eq!(
            f.check("logs", Some("a"), EventKind::Update, None),
            Verdict::Drop
        );
        assert_eq!(
            f.check("logs", Some("a"), EventKind::Insert, None),
            Verdict::Keep
        );
        assert_eq!(
            f.check(
                "logs",
                Some("a"),
                EventKind::Ddl("create table"),
                Some("CREATE TABLE a (x int)")
            ),
            Verdict::Keep
        );
        assert_eq!(
            f.check(
                "shop",
                Some("orders"),
                EventKind::Ddl("truncate table"),
                Some("truncate orders")
            ),
            Verdict::Refuse("no-truncate".into())
        );
    }

    #[test]
    fn tidb_dm_finer_names_incompatible_changes_none_and_aliases() {
        let drop_col = EventKind::AlterChange(["drop column", ""]);
        let add_pk = EventKind::AlterChange(["modify constraint", "add primary key"]);
        let add_col = EventKind::AlterChange(["add column", ""]);
        let plain_alter = EventKind::AlterChange(["", ""]);
        let check = |events: &[&str], kind: EventKind| {
            let rules = [(
                "r".to_string(),
                rule("s", Some("t"), events, &[], FilterAction::Ignore),
            )];
            EventFilter::new(rules.iter().map(|(n, r)| (n, r)), false).check(
                "s",
                Some("t"),
                kind,
                None,
            )
        };
        assert_eq!(check(&["drop column"], drop_col), Verdict::Drop);
        assert_eq!(check(&["drop column"], add_col), Verdict::Keep);
        // `alter table` keeps naming every ALTER TABLE change.
        assert_eq!(check(&["alter table"], drop_col), Verdict::Drop);
        assert_eq!(check(&["add primary key"], add_pk), Verdict::Drop);
        assert_eq!(check(&["modify constraint"], add_pk), Verdict::Drop);
        assert_eq!(
            check(&["incompatible ddl changes"], drop_col),
            Verdict::Drop
        );
        assert_eq!(
            check(&["incompatible ddl changes"], plain_alter),
            Verdict::Keep
        );
        assert_eq!(
            check(
                &["incompatible ddl changes"],
                EventKind::Ddl("create table")
            ),
            Verdict::Keep
        );
        assert_eq!(
            check(
                &["incompatible ddl changes"],
                EventKind::Ddl("truncate table")
            ),
            Verdict::Drop
        );
        assert_eq!(
            check(&["incompatible ddl changes"], EventKind::Insert),
            Verdict::Keep
        );
        // `none` ends the list, as in DM; `none ddl` only for DDL.
        assert_eq!(check(&["none", "drop column"], drop_col), Verdict::Keep);
        assert_eq!(
            check(&["none ddl", "insert"], EventKind::Insert),
            Verdict::Drop
        );
        assert_eq!(check(&["none ddl", "all"], drop_col), Verdict::Keep);
        assert_eq!(
            check(&["DROP SCHEMA"], EventKind::Ddl("drop database")),
            Verdict::Drop
        );
    }
}
