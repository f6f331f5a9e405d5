//! Which tables are the helpers of an online schema change tool (TiDB DM's `online-ddl`):
//! gh-ost and pt-online-schema-change copy a table into a *shadow* table (`_t_gho`,
//! `_t_new`), ALTER the copy, and swap it in with a RENAME; the original ends as a *trash*
//! table (`_t_del`, `_t_old`) and gh-ost keeps a changelog (`_t_ghc`). Their rows are never
//! migrated: the ALTERs run on a shadow table are applied to its real table at the swap.
//! A rule is a regular expression whose first capture group is the real table's name.

use regex::Regex;

pub use crate::config::online_ddl::{check_rule, DEFAULT_SHADOW_RULES, DEFAULT_TRASH_RULES};

/// What a table is to an online schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRole {
    Real,
    /// The copy being altered, of the real table named.
    Shadow(String),
    /// The original after the swap, or a tool's bookkeeping table, of the real table named.
    Trash(String),
}

#[derive(Debug, Clone)]
pub struct OnlineDdlRules {
    shadow: Vec<Regex>,
    trash: Vec<Regex>,
}

impl OnlineDdlRules {
    /// Rules were checked with [`check_rule`] when the task file was read; any that does not
    /// compile is left out.
    pub fn new(shadow: &[String], trash: &[String]) -> Self {
        let compile = |v: &[String]| v.iter().filter_map(|r| Regex::new(r).ok()).collect();
        OnlineDdlRules {
            shadow: compile(shadow),
            trash: compile(trash),
        }
    }

    pub fn role(&self, table: &str) -> TableRole {
        let real = |rules: &[Regex]| {
            rules.iter().find_map(|r| {
                r.captures(table)
                    .map(|c| c.get(1).map_or(table, |m| m.as_str()).to_string())
            })
        };
        if let Some(t) = real(&self.shadow) {
            return TableRole::Shadow(t);
        }
        if let Some(t) = real(&self.trash) {
            return TableRole::Trash(t);
        }
        TableRole::Real
    }

    pub fn is_real(&self, table: &str) -> bool {
        self.role(table) == TableRole::Real
    }
}

/// The tool that names its shadow table so, for people reading query-status.
pub fn tool_of(shadow: &str) -> &'static str {
    if shadow.ends_with("_gho") {
        "gh-ost"
    } else if shadow.ends_with("_new") {
        "pt-online-schema-change"
    } else {
        "online schema change"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> OnlineDdlRules {
        let v = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        OnlineDdlRules::new(&v(DEFAULT_SHADOW_RULES), &v(DEFAULT_TRASH_RULES))
    }

    #[test]
    fn gh_ost_and_pt_osc_tables_are_told_apart_from_real_ones() {
        let r = defaults();
        assert_eq!(r.role("_orders_gho"), TableRole::Shadow("orders".into()));
        assert_eq!(r.role("_orders_new"), TableRole::Shadow("orders".into()));
        assert_eq!(
            r.role("_order_items_del"),
            TableRole::Trash("order_items".into())
        );
        assert_eq!(r.role("_orders_ghc"), TableRole::Trash("orders".into()));
        assert_eq!(r.role("_orders_old"), TableRole::Trash("orders".into()));
        assert_eq!(r.role("orders"), TableRole::Real);
        assert_eq!(r.role("orders_new"), TableRole::Real);
        assert_eq!(r.role("_new"), TableRole::Real);
        assert_eq!(tool_of("_orders_gho"), "gh-ost");
        assert_eq!(tool_of("_orders_new"), "pt-online-schema-change");
    }

    #[test]
    fn a_rule_must_capture_the_real_name() {
        assert!(check_rule("^_(.+)_tmp$").is_ok());
        assert!(check_rule("^_.+_tmp$")
            .unwrap_err()
            .contains("capture group"));
        assert!(check_rule("^_(.+_tmp$").is_err());
    }
}
