//! Which session variables a configured `session` (source `from`, task target) may set.

/// A session variable's name: letters, digits and `_` (it is written into `SET` as it is).
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// TiDB's own variables (`tidb_*`), which TiDB DM's files set for a TiDB target: set only on
/// a TiDB, since MySQL and MariaDB refuse unknown variables.
pub fn is_tidb_variable(name: &str) -> bool {
    name.len() > 5
        && name
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("tidb_"))
}

/// Session variables dm sets itself (`SESSION_INIT`) and a configured `session` may not
/// change: the time zone TIMESTAMPs travel in, the sql_mode that keeps values exact, the
/// character set dm's literals are written in (another one could also turn an escaped quote
/// into a real one), foreign key checks (a REPLACE of a parent would cascade). Left out with a
/// warning (`TaskConfig::compat_warnings`).
pub fn is_dm_controlled(name: &str) -> bool {
    const CONTROLLED: &[&str] = &[
        "time_zone",
        "sql_mode",
        "foreign_key_checks",
        "names",
        "character_set_client",
        "character_set_connection",
        "character_set_results",
        "collation_connection",
    ];
    CONTROLLED.iter().any(|c| c.eq_ignore_ascii_case(name))
}
