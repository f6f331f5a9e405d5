//! Copy of one table: snapshot, definition, rows, and the record that it is done.

use crate::checkpoint::MetaTables;
use crate::config::{DbConfig, Flavor, SourceConfig};
use crate::db::{quote_ident, Datum};
use crate::error::{errno, DbRole, Error, Result};
use crate::schema::{load_table, TableName};
use crate::status::Progress;
use crate::upstream::{gtid_at, BinlogPos, Position};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Statement size that keeps well under the default max_allowed_packet (16 MiB).
const BATCH_BYTES: usize = 2 << 20;
const BATCH_ROWS: usize = 5_000;
const ATTEMPTS: usize = 3;

pub struct TableCopy {
    pub source: SourceConfig,
    pub flavor: Flavor,
    pub target: DbConfig,
    pub meta: MetaTables,
    pub progress: Arc<Progress>,
    pub name: TableName,
}

impl TableCopy {
    pub async fn run(self) -> Result<()> {
        for attempt in 1..=ATTEMPTS {
            match self.copy_once().await {
                // The table changed definition after our snapshot began: take a new one.
                Err(e) if e.errno() == Some(errno::TABLE_DEF_CHANGED) && attempt < ATTEMPTS => {
                    tracing::info!(table = %self.name, "definition changed during snapshot; copying again");
                }
                other => return other,
            }
        }
        Ok(())
    }

    fn src_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        |e| Error::db(DbRole::Source, &self.source.from.addr(), e)
    }

    fn tgt_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        |e| Error::db(DbRole::Target, &self.target.addr(), e)
    }

    /// Starts the snapshot transaction and returns the binlog position it sees.
    async fn begin_snapshot(&self, src: &mut Conn) -> Result<BinlogPos> {
        let se = self.src_err();
        src.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(&se)?;
        match self.flavor {
            Flavor::Mariadb => {
                src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(&se)?;
                let rows: Vec<(String, String)> = src
                    .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    .await
                    .map_err(&se)?;
                let get = |k: &str| {
                    rows.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                let name = get("binlog_snapshot_file").unwrap_or_default();
                let pos = get("binlog_snapshot_position")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                if name.is_empty() {
                    return Err(Error::Db {
                        role: DbRole::Source,
                        addr: self.source.from.addr(),
                        message: "binary logging is off: no binlog_snapshot_file".into(),
                        errno: None,
                        retryable: false,
                    });
                }
                Ok(BinlogPos { name, pos })
            }
            Flavor::Mysql => {
                // MySQL has no lock-free snapshot position: hold a global read lock from a
                // second session while this one starts its snapshot and reads the position.
                let mut locker = crate::db::connect(&self.source.from, DbRole::Source).await?;
                locker
                    .query_drop("FLUSH TABLES WITH READ LOCK")
                    .await
                    .map_err(&se)?;
                src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(&se)?;
                let row: Option<mysql_async::Row> =
                    src.query_first("SHOW MASTER STATUS").await.map_err(&se)?;
                let row = row.map(|r| {
                    (
                        r.get::<String, _>(0).unwrap_or_default(),
                        r.get::<u64, _>(1).unwrap_or_default(),
                    )
                });
                locker.query_drop("UNLOCK TABLES").await.map_err(&se)?;
                let (name, pos) = row.unwrap_or_default();
                Ok(BinlogPos { name, pos })
            }
        }
    }

    async fn copy_once(&self) -> Result<()> {
        let (se, te) = (self.src_err(), self.tgt_err());
        let mut src = crate::db::connect(&self.source.from, DbRole::Source).await?;
        let at = self.begin_snapshot(&mut src).await?;
        // Opening the table takes its metadata lock for the rest of the transaction: from here
        // on its definition cannot change under us.
        match src
            .query_drop(format!("SELECT 1 FROM {} LIMIT 0", self.name.quoted()))
            .await
        {
            Err(mysql_async::Error::Server(e)) if e.code == errno::NO_SUCH_TABLE => return Ok(()),
            r => r.map_err(&se)?,
        }
        let create: Option<(String, String)> = src
            .query_first(format!("SHOW CREATE TABLE {}", self.name.quoted()))
            .await
            .map_err(&se)?;
        let Some((_, create)) = create else {
            return Ok(());
        };
        let Some(table) = load_table(&mut src, &self.name).await.map_err(&se)? else {
            return Ok(());
        };
        let gtid = gtid_at(
            &mut src,
            self.flavor,
            &self.source.from.addr(),
            &at.name,
            at.pos,
        )
        .await?;
        let at = Position { binlog: at, gtid };

        let mut tgt = crate::db::connect(&self.target, DbRole::Target).await?;
        tgt.query_drop(format!("USE {}", quote_ident(&self.name.schema)))
            .await
            .map_err(&te)?;
        tgt.query_drop(format!("DROP TABLE IF EXISTS {}", self.name.quoted()))
            .await
            .map_err(&te)?;
        tgt.query_drop(create).await.map_err(&te)?;

        // Raw bytes, whatever the column's character set.
        src.query_drop("SET character_set_results = binary")
            .await
            .map_err(&se)?;
        let cols: Vec<usize> = (0..table.columns.len())
            .filter(|&i| !table.columns[i].generated)
            .collect();
        let col_list = cols
            .iter()
            .map(|&i| quote_ident(&table.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {col_list} FROM {}", self.name.quoted());
        let insert_head = format!("INSERT INTO {} ({col_list}) VALUES ", self.name.quoted());

        // Rows are encoded here and written by a second task, so reading and writing overlap.
        let (tx, mut rx) = mpsc::channel::<(String, u64)>(4);
        let progress = self.progress.clone();
        let target_addr = self.target.addr();
        let writer = tokio::spawn(async move {
            while let Some((sql, n)) = rx.recv().await {
                tgt.query_drop(sql)
                    .await
                    .map_err(|e| Error::db(DbRole::Target, &target_addr, e))?;
                progress.rows_loaded.fetch_add(n, Ordering::Relaxed);
            }
            Ok::<Conn, Error>(tgt)
        });

        let mut total = 0u64;
        let read = async {
            let mut result = src.exec_iter(select, ()).await.map_err(&se)?;
            let mut sql = String::with_capacity(BATCH_BYTES + 4096);
            let mut n = 0u64;
            while let Some(row) = result.next().await.map_err(&se)? {
                sql.push_str(if n == 0 { &insert_head } else { "," });
                sql.push('(');
                for (k, (&ci, v)) in cols.iter().zip(row.unwrap()).enumerate() {
                    if k > 0 {
                        sql.push(',');
                    }
                    Datum::from_value(&table.columns[ci], v).write_sql(&mut sql);
                }
                sql.push(')');
                n += 1;
                if sql.len() >= BATCH_BYTES || n as usize >= BATCH_ROWS {
                    total += n;
                    if tx.send((std::mem::take(&mut sql), n)).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                    n = 0;
                }
            }
            if n > 0 {
                total += n;
                let _ = tx.send((sql, n)).await;
            }
            Ok::<(), Error>(())
        }
        .await;
        drop(tx);
        let mut tgt = writer
            .await
            .map_err(|e| Error::Invalid(format!("writer of {} panicked: {e}", self.name)))??;
        read?;
        src.query_drop("COMMIT").await.map_err(&se)?;

        tgt.query_drop(
            self.meta
                .table_loaded_sql(&self.source.source_id, &table, &at, total),
        )
        .await
        .map_err(&te)?;
        self.progress.tables_done.fetch_add(1, Ordering::Relaxed);
        tracing::info!(table = %self.name, rows = total, position = %at, "table copied");
        Ok(())
    }
}
