//! The block-allow list, with TiDB DM's order of checks: schema level first (`do-dbs`, else
//! `ignore-dbs`), then table level (`do-tables`, else `ignore-tables`). System schemas are
//! never migrated.

use super::{OnlineDdlRules, TableRole};
use crate::config::BlockAllowList;
use crate::config::Pattern;

const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

#[derive(Debug, Clone)]
pub struct TableFilter {
    do_dbs: Vec<Pattern>,
    ignore_dbs: Vec<Pattern>,
    do_tables: Vec<(Pattern, Pattern)>,
    ignore_tables: Vec<(Pattern, Pattern)>,
    /// The task's own meta schema is never migrated (it lives in the target).
    meta_schema: String,
    /// With `online-ddl`: the shadow and trash tables of gh-ost and pt-osc, never migrated.
    online_ddl: Option<std::sync::Arc<OnlineDdlRules>>,
    /// System schemas too (reading binlog files whole, not migrating).
    system: bool,
    /// Only these of the tables the rules select (tables joining a running task).
    only: Option<std::sync::Arc<std::collections::BTreeSet<crate::table::TableName>>>,
}

impl TableFilter {
    /// Patterns were validated when the task file was parsed.
    pub fn new(ba: &BlockAllowList, meta_schema: &str) -> Self {
        Self::with_case(ba, meta_schema, false)
    }

    /// With `case_sensitive` (TiDB DM's `case-sensitive: true`), names match exactly.
    pub fn with_case(ba: &BlockAllowList, meta_schema: &str, case_sensitive: bool) -> Self {
        let pat = |p: &str| Pattern::with_case(p, case_sensitive).ok();
        let pats = |v: &[String]| v.iter().filter_map(|p| pat(p)).collect();
        let tables = |v: &[crate::config::TableRule]| {
            v.iter()
                .filter_map(|t| Some((pat(&t.db_name)?, pat(&t.tbl_name)?)))
                .collect()
        };
        TableFilter {
            do_dbs: pats(&ba.do_dbs),
            ignore_dbs: pats(&ba.ignore_dbs),
            do_tables: tables(&ba.do_tables),
            ignore_tables: tables(&ba.ignore_tables),
            meta_schema: meta_schema.to_string(),
            online_ddl: None,
            system: false,
            only: None,
        }
    }

    /// The same filter, narrowed to `tables` (and their schemas).
    pub fn only(mut self, tables: std::collections::BTreeSet<crate::table::TableName>) -> Self {
        self.only = Some(std::sync::Arc::new(tables));
        self
    }

    /// The tables `only` narrowed the filter to.
    pub fn only_tables(&self) -> Option<&std::collections::BTreeSet<crate::table::TableName>> {
        self.only.as_deref()
    }

    /// Every table, those of system schemas included: for reading binlog files whole (files a
    /// test server wrote keep their tables in `mysql`), never for a task.
    pub fn everything() -> Self {
        TableFilter {
            system: true,
            ..Self::new(&BlockAllowList::default(), "")
        }
    }

    /// The same filter, leaving out the helper tables of online schema changes.
    pub fn with_online_ddl(mut self, rules: OnlineDdlRules) -> Self {
        self.online_ddl = Some(std::sync::Arc::new(rules));
        self
    }

    pub fn online_ddl(&self) -> Option<&OnlineDdlRules> {
        self.online_ddl.as_deref()
    }

    /// Whether `db`.`table`, or the real table of an online schema change's helper table,
    /// is migrated.
    pub fn allows_real_table(&self, db: &str, table: &str) -> bool {
        match self.online_ddl().map(|r| r.role(table)) {
            Some(TableRole::Shadow(real) | TableRole::Trash(real)) => self.allows_table(db, &real),
            _ => self.allows_table(db, table),
        }
    }

    /// Whether the schema itself (CREATE/DROP DATABASE) is migrated.
    pub fn allows_schema(&self, db: &str) -> bool {
        if let Some(only) = &self.only {
            if !only.iter().any(|t| t.schema == db) {
                return false;
            }
        }
        if SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db))
            || db.eq_ignore_ascii_case(&self.meta_schema)
        {
            return false;
        }
        if !self.do_dbs.is_empty() {
            return self.do_dbs.iter().any(|p| p.matches(db))
                || self.do_tables.iter().any(|(d, _)| d.matches(db));
        }
        if self.ignore_dbs.iter().any(|p| p.matches(db)) {
            return false;
        }
        true
    }

    /// Whether rows and DDL of `db`.`table` are migrated.
    pub fn allows_table(&self, db: &str, table: &str) -> bool {
        if self.system {
            return true;
        }
        if SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db))
            || db.eq_ignore_ascii_case(&self.meta_schema)
        {
            return false;
        }
        if self.online_ddl().is_some_and(|r| !r.is_real(table)) {
            return false;
        }
        if let Some(only) = &self.only {
            if !only.iter().any(|t| t.schema == db && t.table == table) {
                return false;
            }
        }
        let db_listed = self.do_dbs.iter().any(|p| p.matches(db));
        if !self.do_dbs.is_empty() && !db_listed && self.do_tables.is_empty() {
            return false;
        }
        if self.do_dbs.is_empty() && self.ignore_dbs.iter().any(|p| p.matches(db)) {
            return false;
        }
        if !self.do_tables.is_empty() {
            let listed = self
                .do_tables
                .iter()
                .any(|(d, t)| d.matches(db) && t.matches(table));
            // do-dbs without matching do-tables still selects every table of those schemas.
            return listed || (db_listed && !self.do_tables.iter().any(|(d, _)| d.matches(db)));
        }
        !self
            .ignore_tables
            .iter()
            .any(|(d, t)| d.matches(db) && t.matches(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableRule;
    use crate::table::TableName;

    fn rule(d: &str, t: &str) -> TableRule {
        TableRule {
            db_name: d.into(),
            tbl_name: t.into(),
        }
    }

    #[test]
    fn only_narrows_to_the_tables_named() {
        let f = TableFilter::new(
            &BlockAllowList {
                ignore_tables: vec![rule("shop", "secret")],
                ..Default::default()
            },
            "dm_meta",
        );
        let names = [
            TableName::new("shop", "b"),
            TableName::new("shop", "secret"),
        ];
        let f = f.only(names.into_iter().collect());
        assert!(f.allows_table("shop", "b"));
        assert!(!f.allows_table("shop", "a"));
        assert!(!f.allows_table("shop", "secret"), "the rules still apply");
        assert!(f.allows_schema("shop"));
        assert!(!f.allows_schema("other"));
    }

    #[test]
    fn do_dbs_selects_schemas() {
        let f = TableFilter::new(
            &BlockAllowList {
                do_dbs: vec!["shop*".into()],
                ..Default::default()
            },
            "dm_meta",
        );
        assert!(f.allows_table("shop", "orders"));
        assert!(!f.allows_table("other", "orders"));
        assert!(!f.allows_table("mysql", "user"));
        assert!(f.allows_schema("shop1"));
    }

    #[test]
    fn do_tables_and_ignore_tables() {
        let f = TableFilter::new(
            &BlockAllowList {
                do_tables: vec![rule("shop", "order*")],
                ..Default::default()
            },
            "dm_meta",
        );
        assert!(f.allows_table("shop", "orders"));
        assert!(!f.allows_table("shop", "users"));
        let f = TableFilter::new(
            &BlockAllowList {
                ignore_tables: vec![rule("shop", "~^tmp_")],
                ignore_dbs: vec!["test".into()],
                ..Default::default()
            },
            "dm_meta",
        );
        assert!(!f.allows_table("shop", "tmp_x"));
        assert!(f.allows_table("shop", "x"));
        assert!(!f.allows_table("test", "x"));
        assert!(!f.allows_table("dm_meta", "x"));
    }
}
