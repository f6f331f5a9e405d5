//! Taking over a TiDB DM task: DM keeps its position in the target, in
//! `<meta-schema>.<task>_syncer_checkpoint` (one global row per source, `is_global = 1`, plus
//! a row per table). A dm task of the same name and meta schema that has no checkpoint of its
//! own starts from DM's global point, so a DBA stops DM and starts dm without copying again.

use crate::config::Flavor;
use crate::db::quote_ident;
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, GtidSet, Position};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// DM's global point of one source: where its syncer resumes, and the safe-mode exit point it
/// recorded (set when DM stopped on an error).
#[derive(Debug, Clone, PartialEq)]
pub struct TidbDmPoint {
    pub table: String,
    pub position: Position,
    pub safe_mode_exit: Option<BinlogPos>,
}

/// DM's checkpoint of `source_id` for `task`, if its table exists and holds a global point.
pub async fn read(
    conn: &mut Conn,
    addr: &str,
    meta_schema: &str,
    task: &str,
    source_id: &str,
    flavor: Flavor,
) -> Result<Option<TidbDmPoint>> {
    let table_name = format!("{task}_syncer_checkpoint");
    let err = |e| Error::db(DbRole::Target, addr, e);
    let exists: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            (meta_schema, &table_name),
        )
        .await
        .map_err(err)?;
    if exists.is_none() {
        return Ok(None);
    }
    let table = format!("{}.{}", quote_ident(meta_schema), quote_ident(&table_name));
    type Row = (
        Option<String>,
        Option<u64>,
        Option<String>,
        Option<String>,
        Option<u64>,
    );
    let row: Option<Row> = conn
        .exec_first(
            format!(
                "SELECT binlog_name, binlog_pos, binlog_gtid, exit_safe_binlog_name, exit_safe_binlog_pos \
                 FROM {table} WHERE id = ? AND is_global = 1"
            ),
            (source_id,),
        )
        .await
        .map_err(err)?;
    let Some((Some(name), pos, gtid, exit_name, exit_pos)) = row else {
        return Ok(None);
    };
    let bad = |what: &str, value: &str, why: String| {
        Error::Meta(format!(
            "TiDB DM's checkpoint {table} (source {source_id}): {what} `{value}`: {why}; fix or drop that row to start without it"
        ))
    };
    if name.is_empty() {
        return Ok(None);
    }
    let binlog = BinlogPos {
        name: real_binlog_name(&name)
            .ok_or_else(|| bad("binlog_name", &name, "not a binlog file name".into()))?,
        pos: pos.unwrap_or(4).max(4),
    };
    let gtid = match gtid.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(g) => Some(GtidSet::parse(flavor, g).map_err(|e| bad("binlog_gtid", g, e))?),
    };
    let safe_mode_exit = match (exit_name.as_deref(), exit_pos) {
        (Some(n), Some(p)) if !n.is_empty() && p > 0 => Some(BinlogPos {
            name: real_binlog_name(n)
                .ok_or_else(|| bad("exit_safe_binlog_name", n, "not a binlog file name".into()))?,
            pos: p,
        }),
        _ => None,
    };
    Ok(Some(TidbDmPoint {
        table,
        position: Position { binlog, gtid },
        safe_mode_exit,
    }))
}

/// The source's file name of a DM position: with a relay log DM writes `mysql-bin|000001.000003`
/// (base, `|`, the relay sub-directory's number, `.`, the file's number) for `mysql-bin.000003`.
fn real_binlog_name(name: &str) -> Option<String> {
    let real = match name.split_once('|') {
        Some((base, rest)) => format!("{base}.{}", rest.rsplit_once('.')?.1),
        None => name.to_string(),
    };
    crate::position::is_binlog_name(&real).then_some(real)
}

#[cfg(test)]
mod tests {
    #[test]
    fn relay_style_names_are_the_source_files() {
        use super::real_binlog_name as r;
        assert_eq!(r("mysql-bin.000003").as_deref(), Some("mysql-bin.000003"));
        assert_eq!(
            r("mysql-bin|000001.000003").as_deref(),
            Some("mysql-bin.000003")
        );
        assert_eq!(r("../x.000001"), None);
        assert_eq!(r("mysql-bin|000001"), None);
    }
}
