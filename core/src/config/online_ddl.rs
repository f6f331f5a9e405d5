//! `shadow-table-rules` and `trash-table-rules` (TiDB DM's `online-ddl`): regular expressions
//! whose first capture group is the real table's name (`rules::online_ddl` applies them).

use regex::Regex;

/// TiDB DM's defaults: gh-ost's and pt-osc's names.
pub const DEFAULT_SHADOW_RULES: &[&str] = &["^_(.+)_(?:new|gho)$"];
pub const DEFAULT_TRASH_RULES: &[&str] = &["^_(.+)_(?:ghc|del|old)$"];

/// A rule that does not compile or captures no name: the message says which.
pub fn check_rule(rule: &str) -> Result<(), String> {
    let re = Regex::new(rule).map_err(|e| format!("`{rule}`: {e}"))?;
    if re.captures_len() < 2 {
        return Err(format!(
            "`{rule}` has no capture group: its first group must capture the real table's name"
        ));
    }
    Ok(())
}
