//! `check-task`: what must hold on the sources and the target before a task can run, each
//! finding with a level and the fix.

mod retention;

use crate::config::{SourceConfig, TaskConfig};
use crate::error::{DbRole, Error};
use crate::rules::TableFilter;
use crate::rules::TaskRules;
use crate::schema::{list_tables, load_tables};
use crate::table::{Table, TableName};
use crate::upstream::relay::RelayStatus;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub subject: String,
    pub check: String,
    pub level: Level,
    pub message: String,
    pub fix: String,
}

fn finding(subject: &str, check: &str, level: Level, message: String, fix: &str) -> Finding {
    Finding {
        subject: subject.to_string(),
        check: check.to_string(),
        level,
        message,
        fix: fix.to_string(),
    }
}

async fn var(conn: &mut mysql_async::Conn, name: &str) -> Option<String> {
    conn.query_first::<Option<String>, _>(format!("SELECT @@GLOBAL.{name}"))
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Privileges dm's user needs; `A|B` accepts either name (MariaDB shows REPLICATION CLIENT
/// as BINLOG MONITOR).
const SOURCE_PRIVILEGES: &[&str] = &[
    "REPLICATION SLAVE",
    "REPLICATION CLIENT|BINLOG MONITOR",
    "SELECT",
];
const TARGET_PRIVILEGES: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX",
];

/// The privileges of `needed` that `SHOW GRANTS` does not give, by their first name.
async fn missing_privileges(
    conn: &mut mysql_async::Conn,
    needed: &[&'static str],
) -> Vec<&'static str> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap_or_default();
    let all = grants.join(" ").to_ascii_uppercase();
    if all.contains("ALL PRIVILEGES") {
        return vec![];
    }
    needed
        .iter()
        .filter(|p| !p.split('|').any(|name| all.contains(name)))
        .map(|p| p.split('|').next().unwrap_or(p))
        .collect()
}

fn privilege_finding(subject: &str, missing: &[&str], ok: &str, grant: &str) -> Finding {
    if missing.is_empty() {
        finding(subject, "privileges", Level::Ok, ok.into(), "")
    } else {
        finding(
            subject,
            "privileges",
            Level::Fail,
            format!("missing privileges: {}", missing.join(", ")),
            grant,
        )
    }
}

/// Whether the task's `ignore-checking-items` cover a failed check.
pub fn ignored(task: &TaskConfig, f: &Finding) -> bool {
    task.ignore_checking_items.iter().any(|item| {
        item == "all"
            || crate::config::CHECKING_ITEMS.iter().any(|(name, checks)| {
                name == item
                    && checks.contains(&f.check.as_str())
                    && match *name {
                        "target_privilege" => f.subject.starts_with("target"),
                        "dump_privilege" | "replication_privilege" => {
                            f.subject.starts_with("source")
                        }
                        _ => true,
                    }
            })
    })
}

/// Checks every source of the task and the target.
const GIB: u64 = 1 << 30;

/// Disk space for a source's relay log, as its worker reports it.
pub fn relay_space(src: &SourceConfig, status: Option<&RelayStatus>) -> Option<Finding> {
    if !src.enable_relay {
        return None;
    }
    let subject = format!("source {}", src.source_id);
    let remain = src.purge.remain_space;
    let Some((free, s)) = status.and_then(|s| s.free_bytes.map(|f| (f, s))) else {
        return Some(finding(
            &subject,
            "relay disk",
            Level::Warn,
            "the relay log has not reported its disk yet".into(),
            "run check-task again once the source's worker runs the relay (`dm ctl operate-source show`)",
        ));
    };
    let found = format!(
        "{:.1} GiB free in {} on worker {}",
        free as f64 / GIB as f64,
        s.dir,
        s.worker
    );
    Some(if free < remain.saturating_mul(GIB) {
        finding(
            &subject,
            "relay disk",
            if free < GIB { Level::Fail } else { Level::Warn },
            format!("{found}, below purge.remain-space ({remain} GiB): the relay purges every file no task needs"),
            "free disk space, move relay-dir to a larger disk, or `dm ctl purge-relay <source>`",
        )
    } else {
        finding(&subject, "relay disk", Level::Ok, found, "")
    })
}

/// `fresh`: the task starts anew (`--remove-meta`), not from checkpoints it has.
pub async fn check_task(task: &TaskConfig, sources: &[SourceConfig], fresh: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    // A source of binlog files has no server to check.
    for src in sources.iter().filter(|s| s.binlog_dir.is_none()) {
        check_source(task, src, fresh, &mut out).await;
    }
    let subject = format!("target {}", task.target_database.addr());
    match crate::db::connect(&task.target_database, DbRole::Target).await {
        Err(e) => out.push(finding(
            &subject,
            "connection",
            Level::Fail,
            e.to_string(),
            &e.hint(),
        )),
        Ok(mut conn) => {
            let missing = missing_privileges(&mut conn, TARGET_PRIVILEGES).await;
            out.push(privilege_finding(
                &subject,
                &missing,
                "dm's user may write the target",
                &format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON *.* TO '{}'@'%'",
                    task.target_database.user
                ),
            ));
        }
    }
    out
}

/// Foreign keys of selected tables whose actions change other rows (`ON DELETE CASCADE`,
/// `SET NULL`, ...): the source's storage engine makes those changes without writing them to
/// the binlog. Without `foreign-key-checks` dm applies with the checks off, so they never
/// reach the target; with it, a table linked to one the task does not migrate is refused.
async fn cascading_foreign_keys(
    subject: &str,
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
    checks_on: bool,
    out: &mut Vec<Finding>,
) {
    let fks = crate::schema::foreign_keys::list(conn, None)
        .await
        .unwrap_or_default();
    let allowed = |t: &crate::table::TableName| filter.allows_table(&t.schema, &t.table);
    if checks_on {
        let scope: std::collections::BTreeSet<_> = fks
            .iter()
            .flat_map(|fk| [&fk.child, &fk.parent])
            .filter(|t| allowed(t))
            .cloned()
            .collect();
        match crate::schema::foreign_keys::Groups::of(&scope, &fks) {
            Err(m) => out.push(finding(
                subject,
                "foreign keys",
                Level::Fail,
                m,
                "add the referenced table to the task, or leave foreign-key-checks off",
            )),
            Ok(groups) => out.push(finding(
                subject,
                "foreign keys",
                Level::Ok,
                format!(
                    "{} group(s) of tables linked by foreign keys: each copied in one snapshot, its changes applied in order with the checks on",
                    groups.groups().len()
                ),
                "",
            )),
        }
        return;
    }
    let cascades: Vec<String> = fks
        .iter()
        .filter(|fk| allowed(&fk.child) || allowed(&fk.parent))
        .filter(|fk| !fk.cascades().is_empty())
        .map(|fk| format!("{fk}: {}", fk.cascades().join(", ")))
        .collect();
    if !cascades.is_empty() {
        out.push(finding(
            subject,
            "foreign keys with cascading actions",
            Level::Warn,
            format!(
                "{}: the rows a cascade changes on the source are not written to its binlog, and dm applies changes with foreign_key_checks = 0, so the target's child rows keep their old values",
                cascades.join("; ")
            ),
            "set `foreign-key-checks: true` in the task (cascades then happen on the target too), or have the application change child rows itself",
        ));
    }
}

/// Tables whose names `online-ddl`'s rules take for gh-ost's or pt-osc's: they are not
/// migrated. A shadow table at the start may be a run under way, whose ALTER (already run)
/// dm will not see.
async fn online_ddl_tables(
    subject: &str,
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
    out: &mut Vec<Finding>,
) {
    let Some(rules) = filter.online_ddl() else {
        return;
    };
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .unwrap_or_default();
    let helpers: Vec<String> = tables
        .into_iter()
        .filter(|(db, t)| !rules.is_real(t) && filter.allows_real_table(db, t))
        .map(|(db, t)| match rules.role(&t) {
            crate::rules::TableRole::Shadow(real) => format!("{db}.{t} (shadow of {real})"),
            _ => format!("{db}.{t}"),
        })
        .collect();
    if !helpers.is_empty() {
        out.push(finding(
            subject,
            "online schema change tables",
            Level::Warn,
            format!(
                "{}: their names match `shadow-table-rules`/`trash-table-rules`, so dm takes them for gh-ost's or pt-online-schema-change's tables and does not migrate them; a run under way whose ALTER already ran pauses the task at its swap (DM-DDL-6004)",
                helpers.join(", ")
            ),
            "let a tool's run finish before starting the task; for tables of your own with such names set `online-ddl: false` or narrower rules",
        ));
    }
}

async fn check_source(task: &TaskConfig, src: &SourceConfig, fresh: bool, out: &mut Vec<Finding>) {
    let subject = format!("source {}", src.source_id);
    let mut conn = match crate::db::connect(&src.from, DbRole::Source).await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                &subject,
                "connection",
                Level::Fail,
                e.to_string(),
                &e.hint(),
            ));
            return;
        }
    };
    let expect = [
        (
            "log_bin",
            "1",
            "binary logging",
            "start the server with --log-bin",
        ),
        (
            "binlog_format",
            "ROW",
            "binlog format",
            "SET GLOBAL binlog_format = 'ROW' (and in my.cnf)",
        ),
        (
            "binlog_row_image",
            "FULL",
            "row image",
            "SET GLOBAL binlog_row_image = 'FULL' (and in my.cnf)",
        ),
    ];
    for (name, want, check, fix) in expect {
        let v = var(&mut conn, name).await.unwrap_or_default();
        let ok =
            v.eq_ignore_ascii_case(want) || (name == "log_bin" && v.eq_ignore_ascii_case("ON"));
        out.push(finding(
            &subject,
            check,
            if ok { Level::Ok } else { Level::Fail },
            format!("{name} = {v}"),
            if ok { "" } else { fix },
        ));
    }
    match var(&mut conn, "binlog_row_metadata").await {
        Some(v) if !v.eq_ignore_ascii_case("FULL") => out.push(finding(
            &subject,
            "row metadata",
            Level::Warn,
            format!("binlog_row_metadata = {v}: dm relies on its tracked schema alone"),
            "SET GLOBAL binlog_row_metadata = 'FULL'",
        )),
        _ => {}
    }
    let server_id = var(&mut conn, "server_id").await.unwrap_or_default();
    if server_id == "0" || server_id.is_empty() {
        out.push(finding(
            &subject,
            "server_id",
            Level::Fail,
            "server_id is 0".into(),
            "set a non-zero server_id in my.cnf",
        ));
    } else if server_id == src.dump_server_id().to_string() {
        out.push(finding(
            &subject,
            "server_id",
            Level::Fail,
            format!("the source's server_id {server_id} equals dm's"),
            "set `server-id` in the source file to another value",
        ));
    } else {
        out.push(finding(
            &subject,
            "server_id",
            Level::Ok,
            format!("server_id = {server_id}"),
            "",
        ));
    }
    let missing = missing_privileges(&mut conn, SOURCE_PRIVILEGES).await;
    out.push(privilege_finding(
        &subject,
        &missing,
        "dm's user may read rows and the binlog",
        &format!(
            "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{}'@'%'",
            src.from.user
        ),
    ));
    let filter = task.table_filter_of(&src.source_id);
    let names = list_tables(&mut conn, &filter).await.unwrap_or_default();
    let tables = load_tables(&mut conn, &names).await.unwrap_or_default();
    let (mut keyless, mut whole) = (vec![], vec![]);
    for table in &tables {
        if table.identity_key().is_none() {
            keyless.push(table.name.to_string());
        } else if !crate::snapshot::chunkable(&mut conn, table).await {
            whole.push(table.name.to_string());
        }
    }
    if !keyless.is_empty() {
        out.push(finding(
            &subject,
            "tables without primary or unique key",
            Level::Warn,
            format!(
                "{}: a replay after a restart may duplicate their rows; the full phase copies each \
                 in one snapshot and cannot resume inside it",
                keyless.join(", ")
            ),
            "add a primary key (or a NOT NULL unique key) to these tables",
        ));
    }
    retention::binlog_retention(task, src, fresh, &subject, &mut conn, out).await;
    cascading_foreign_keys(&subject, &mut conn, &filter, task.foreign_key_checks, out).await;
    online_ddl_tables(&subject, &mut conn, &filter, out).await;
    check_target_tables(task, src, &mut conn, &tables, out).await;
    if !whole.is_empty() {
        out.push(finding(
            &subject,
            "tables the full phase cannot split",
            Level::Warn,
            format!(
                "{}: their key has a column (ENUM, SET, BIT, FLOAT, ...) that cannot bound a \
                 range, so each is copied in one snapshot and cannot resume inside it",
                whole.join(", ")
            ),
            "fine for small tables; for big ones add an integer or string primary key",
        ));
    }
}

/// Target tables that already exist with other columns than their source table (the full
/// phase would fail or write wrong columns), and source collations the target lacks.
async fn check_target_tables(
    task: &TaskConfig,
    src: &SourceConfig,
    conn: &mut mysql_async::Conn,
    tables: &[Table],
    out: &mut Vec<Finding>,
) {
    let subject = format!("source {}", src.source_id);
    let Ok(mut tgt) = crate::db::connect(&task.target_database, DbRole::Target).await else {
        return; // reported by the target's own checks
    };
    let router = task.router_of(&src.source_id);
    // Routed tables get extra columns of their own.
    let unrouted: Vec<&Table> = tables
        .iter()
        .filter(|t| router.route(&t.name).is_none())
        .collect();
    let names: Vec<TableName> = unrouted.iter().map(|t| t.name.clone()).collect();
    let existing: std::collections::BTreeMap<TableName, Table> = load_tables(&mut tgt, &names)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let shape = |t: &Table| {
        t.columns
            .iter()
            .map(|c| (c.name.to_lowercase(), c.data_type.clone()))
            .collect::<Vec<_>>()
    };
    let mut differ = vec![];
    for table in unrouted {
        if let Some(there) = existing.get(&table.name) {
            if shape(there) != shape(table) {
                differ.push(table.name.to_string());
            }
        }
    }
    out.push(if differ.is_empty() {
        finding(
            &subject,
            "target tables",
            Level::Ok,
            "no target table has other columns".into(),
            "",
        )
    } else {
        finding(
            &subject,
            "target tables",
            Level::Fail,
            format!(
                "{}: the target has these tables with other columns",
                differ.join(", ")
            ),
            "drop them on the target (dm creates them), or make their columns match the source",
        )
    });
    let used: Vec<String> = conn
        .query(format!(
            "SELECT DISTINCT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_COLLATION IS NOT NULL \
             AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema', {})",
            crate::db::quote_str(&task.meta_schema)
        ))
        .await
        .unwrap_or_default();
    let known: Vec<String> = tgt
        .query("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .unwrap_or_default();
    let unknown: Vec<String> = used.into_iter().filter(|c| !known.contains(c)).collect();
    out.push(if unknown.is_empty() {
        finding(
            &subject,
            "charset and collation",
            Level::Ok,
            "the target knows every collation the source uses".into(),
            "",
        )
    } else {
        finding(
            &subject,
            "charset and collation",
            Level::Fail,
            format!(
                "the target does not know the collations {}",
                unknown.join(", ")
            ),
            "upgrade the target, or change those tables' collation on the source",
        )
    });
}

/// A source that cannot be reached or read fails `operate-source create` early.
/// A `flavor` that is not the server's is refused: dm would read its binlog and GTIDs the
/// wrong way.
pub async fn probe_source(src: &SourceConfig) -> Result<(), Error> {
    if let Some(dir) = &src.binlog_dir {
        let files = crate::upstream::relay::files::list(dir).map_err(|e| {
            Error::Invalid(format!(
                "source `{}`: binlog-dir {}: {e}",
                src.source_id,
                dir.display()
            ))
        })?;
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "source `{}`: binlog-dir {} holds no binlog files (names like `mysql-bin.000001`)",
                src.source_id,
                dir.display()
            )));
        }
        return Ok(());
    }
    let mut conn = crate::db::connect(&src.from, DbRole::Source).await?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| Error::db(DbRole::Source, &src.from.addr(), e))?;
    let version = version.unwrap_or_default();
    let actual = if version.to_ascii_lowercase().contains("mariadb") {
        crate::config::Flavor::Mariadb
    } else {
        crate::config::Flavor::Mysql
    };
    match src.flavor {
        Some(f) if f != actual => Err(Error::Invalid(format!(
            "source `{}`: flavor is {f:?} but {} runs {version} ({actual:?}); set `flavor: {}` or leave it out (dm detects it)",
            src.source_id,
            src.from.addr(),
            format!("{actual:?}").to_lowercase()
        ))),
        _ => Ok(()),
    }
}
