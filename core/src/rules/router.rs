//! Table routing (TiDB DM's `routes`): a table of a matching schema (and table pattern) is
//! written to another schema and table; rules with a table pattern win over schema-only ones.
//! Extract rules write what a regular expression captures of the source table, schema or
//! source id (all groups, joined) into a target column, so rows merged from shards stay
//! distinguishable.

use crate::config::Pattern;
use crate::config::{Extract, RouteRule};
use crate::hooks::TableRouter;
use crate::table::TableName;
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where a source database's own statements (CREATE/ALTER/DROP DATABASE) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaRoute {
    /// To the database of the same name.
    Same,
    /// To another database (a schema rule); `merged` when the rule's pattern may send other
    /// databases there too.
    To { schema: String, merged: bool },
    /// Nowhere: table rules send its tables to other databases, so the target needs no
    /// database of this name (a table that lands in one creates it).
    Away,
}

/// Where a source table's rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub target: TableName,
    /// (target column, value) written with every row.
    pub extra: Vec<(String, String)>,
    /// Several source tables may be routed here (the rule has patterns).
    pub merged: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    schema: Pattern,
    table: Option<Pattern>,
    target_schema: String,
    target_table: Option<String>,
    extract: Vec<(ExtractOf, Regex, String)>,
    merged: bool,
    /// The schema pattern matches several databases.
    schema_merged: bool,
}

#[derive(Debug, Clone, Copy)]
enum ExtractOf {
    Table,
    Schema,
    Source,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    source_id: String,
    rules: Vec<Rule>,
    plugin: Option<PluginRoutes>,
}

type PluginAnswers = HashMap<TableName, Result<Option<TableName>, crate::hooks::PluginError>>;

/// A table router plugin and its answers (asked once per table).
#[derive(Clone)]
struct PluginRoutes {
    name: String,
    router: Arc<dyn TableRouter>,
    answers: Arc<Mutex<PluginAnswers>>,
}

impl std::fmt::Debug for PluginRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginRoutes({})", self.name)
    }
}

fn captured(re: &Regex, name: &str) -> String {
    match re.captures(name) {
        Some(c) if c.len() > 1 => c.iter().skip(1).flatten().map(|m| m.as_str()).collect(),
        Some(c) => c[0].to_string(),
        None => String::new(),
    }
}

fn is_pattern(p: &str) -> bool {
    p.starts_with('~') || p.contains('*') || p.contains('?')
}

impl Router {
    /// Patterns and regexes were validated when the task file was parsed.
    pub fn new<'a>(
        source_id: &str,
        rules: impl IntoIterator<Item = &'a RouteRule>,
        case_sensitive: bool,
    ) -> Self {
        let mut rules: Vec<Rule> = rules
            .into_iter()
            .filter_map(|r| {
                let extract = |of, x: &Option<Extract>| {
                    x.as_ref().and_then(|x| {
                        Some((of, Regex::new(&x.regexp).ok()?, x.target_column.clone()))
                    })
                };
                Some(Rule {
                    schema: Pattern::with_case(&r.schema_pattern, case_sensitive).ok()?,
                    table: match &r.table_pattern {
                        Some(t) => Some(Pattern::with_case(t, case_sensitive).ok()?),
                        None => None,
                    },
                    target_schema: r.target_schema.clone(),
                    target_table: r.target_table.clone(),
                    extract: [
                        extract(ExtractOf::Table, &r.extract_table),
                        extract(ExtractOf::Schema, &r.extract_schema),
                        extract(ExtractOf::Source, &r.extract_source),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    merged: is_pattern(&r.schema_pattern)
                        || r.table_pattern.as_deref().is_some_and(is_pattern),
                    schema_merged: is_pattern(&r.schema_pattern),
                })
            })
            .collect();
        // Table rules first.
        rules.sort_by_key(|r| r.table.is_none());
        Router {
            source_id: source_id.to_string(),
            rules,
            plugin: None,
        }
    }

    /// Asks the table router plugin `name` first; its `None` leaves the table to the rules.
    pub fn with_plugin(mut self, name: String, router: Arc<dyn TableRouter>) -> Self {
        self.plugin = Some(PluginRoutes {
            name,
            router,
            answers: Arc::default(),
        });
        self
    }

    /// The plugin's answer for `t` (asked once).
    fn plugin_route(
        &self,
        t: &TableName,
    ) -> Option<Result<Option<TableName>, crate::hooks::PluginError>> {
        let p = self.plugin.as_ref()?;
        let mut answers = p.answers.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            answers
                .entry(t.clone())
                .or_insert_with(|| p.router.route(t))
                .clone(),
        )
    }

    /// `route`, but a failing router plugin is an error (`route` would keep the table's name).
    pub fn route_checked(&self, t: &TableName) -> crate::Result<Option<Routed>> {
        if let Some(Err(error)) = self.plugin_route(t) {
            return Err(crate::Error::Plugin {
                plugin: self
                    .plugin
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                hook: "table router".into(),
                table: t.to_string(),
                position: "-".into(),
                error: Box::new(error),
            });
        }
        Ok(self.route(t))
    }

    /// Where statements on the database `db` itself go: a schema rule (no table pattern)
    /// renames it, as in TiDB DM.
    pub fn route_schema(&self, db: &str) -> SchemaRoute {
        let matching = || self.rules.iter().filter(|r| r.schema.matches(db));
        match matching().find(|r| r.table.is_none()) {
            Some(r) if r.target_schema != db => SchemaRoute::To {
                schema: r.target_schema.clone(),
                merged: r.schema_merged,
            },
            Some(_) => SchemaRoute::Same,
            None if matching().next().is_some() && matching().all(|r| r.target_schema != db) => {
                SchemaRoute::Away
            }
            None => SchemaRoute::Same,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.plugin.is_none()
    }

    /// Where `t` goes; `None` when no rule routes it (it keeps its name).
    pub fn route(&self, t: &TableName) -> Option<Routed> {
        if let Some(Ok(Some(target))) = self.plugin_route(t) {
            if target != *t {
                // Plugins merge by name patterns: several tables may land here.
                return Some(Routed {
                    target,
                    extra: vec![],
                    merged: true,
                });
            }
        }
        let rule = self.rules.iter().find(|r| {
            r.schema.matches(&t.schema) && r.table.as_ref().is_none_or(|p| p.matches(&t.table))
        })?;
        let table = match (&rule.table, &rule.target_table) {
            (Some(_), Some(target)) => target.clone(),
            _ => t.table.clone(),
        };
        let extra = rule
            .extract
            .iter()
            .map(|(of, re, col)| {
                let name = match of {
                    ExtractOf::Table => &t.table,
                    ExtractOf::Schema => &t.schema,
                    ExtractOf::Source => &self.source_id,
                };
                (col.clone(), captured(re, name))
            })
            .collect();
        Some(Routed {
            target: TableName::new(rule.target_schema.clone(), table),
            extra,
            merged: rule.merged && rule.table.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rules_win_and_extract_names() {
        let rules = [
            RouteRule {
                schema_pattern: "shard_*".into(),
                table_pattern: None,
                target_schema: "merged".into(),
                target_table: None,
                extract_table: None,
                extract_schema: None,
                extract_source: None,
            },
            RouteRule {
                schema_pattern: "shard_*".into(),
                table_pattern: Some("orders_*".into()),
                target_schema: "merged".into(),
                target_table: Some("orders".into()),
                extract_table: Some(Extract {
                    regexp: "orders_(.*)".into(),
                    target_column: "c_table".into(),
                }),
                extract_schema: Some(Extract {
                    regexp: "shard_(.*)".into(),
                    target_column: "c_schema".into(),
                }),
                extract_source: Some(Extract {
                    regexp: "(.*)".into(),
                    target_column: "c_source".into(),
                }),
            },
        ];
        let r = Router::new("src1", &rules, false);
        let o = r.route(&TableName::new("shard_01", "orders_7")).unwrap();
        assert_eq!(o.target, TableName::new("merged", "orders"));
        assert!(o.merged);
        assert_eq!(
            o.extra,
            vec![
                ("c_table".to_string(), "7".to_string()),
                ("c_schema".to_string(), "01".to_string()),
                ("c_source".to_string(), "src1".to_string())
            ]
        );
        let other = r.route(&TableName::new("shard_02", "users")).unwrap();
        assert_eq!(other.target, TableName::new("merged", "users"));
        assert!(other.extra.is_empty());
        assert!(r.route(&TableName::new("other", "t")).is_none());
        assert_eq!(
            r.route_schema("shard_01"),
            SchemaRoute::To {
                schema: "merged".into(),
                merged: true
            }
        );
        assert_eq!(r.route_schema("other"), SchemaRoute::Same);
        // Only a table rule: the database's tables live elsewhere.
        let away = Router::new("src1", &rules[1..], false);
        assert_eq!(away.route_schema("shard_01"), SchemaRoute::Away);
    }
}
