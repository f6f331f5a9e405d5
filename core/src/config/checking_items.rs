//! TiDB DM's `ignore-checking-items`: the names a task file may give (check-task acts on them).

/// TiDB DM's `ignore-checking-items` names, each with the checks it stands for (source
/// and target); items dm has no check for are accepted and ignore nothing.
pub const CHECKING_ITEMS: &[(&str, &[&str])] = &[
    ("all", &[]),
    ("binlog_enable", &["binary logging"]),
    ("binlog_format", &["binlog format"]),
    ("binlog_row_image", &["row image", "row metadata"]),
    ("server_id", &["server_id"]),
    ("dump_privilege", &["privileges"]),
    ("replication_privilege", &["privileges"]),
    ("target_privilege", &["privileges"]),
    (
        "table_schema",
        &[
            "tables without primary or unique key",
            "tables the full phase cannot split",
            "target tables",
        ],
    ),
    ("schema_of_shard_tables", &[]),
    ("auto_increment_ID", &[]),
    ("version", &[]),
    ("binlog_db", &[]),
    ("conn_number", &[]),
    ("meta_position", &["binlog retention"]),
    ("online_ddl", &["online schema change tables"]),
];

/// The names `ignore-checking-items` accepts.
pub fn checking_items() -> Vec<&'static str> {
    CHECKING_ITEMS.iter().map(|(name, _)| *name).collect()
}
