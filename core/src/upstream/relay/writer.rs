//! Pulls the source's binlog as a replica and appends it to the relay files.
//!
//! Every event the server really wrote goes to the file of the same name at the same offset
//! (its header's `log_pos` is where it ends, checked against the file); what the server makes
//! up for the stream (the first ROTATE, a format description repeated when the dump starts
//! mid-file, heartbeats) is not written. After a crash the torn tail of the last file is cut
//! off and the dump starts again right after the last whole event.

use super::files::{self, FORMAT_DESCRIPTION_EVENT, LOG_EVENT_ARTIFICIAL_F, MAGIC, ROTATE_EVENT};
use super::{Relay, RelayStage};
use crate::config::{Flavor, SourceConfig};
use crate::error::{DbRole, Error, Result};
use crate::position::BinlogPos;
use crate::upstream::{
    current_position, prepare_dump, source_flavor, HEARTBEAT_EVENT, HEARTBEAT_SECS,
};
use futures_util::{FutureExt, StreamExt};
use mysql_async::binlog::events::{Event, RotateEvent};
use mysql_async::binlog::BinlogVersion;
use mysql_async::BinlogStreamRequest;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Readers see new events at least this often under a steady stream.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// An empty relay waits this long for a subtask to name where to start.
const WAIT_FOR_SUBTASK: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(super) async fn run(relay: Arc<Relay>, cfg: SourceConfig) {
    let mut backoff = Duration::from_millis(500);
    let mut paused = relay.paused.subscribe();
    let mut purge = tokio::time::interval(Duration::from_secs(cfg.purge.interval.max(1)));
    purge.tick().await;
    loop {
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
        if crate::failpoint::once("relay-writer-panic") {
            panic!("failpoint relay-writer-panic");
        }
        let started = Instant::now();
        let result = tokio::select! {
            r = pull(&relay, &cfg) => r,
            _ = purge_ticks(&relay, &cfg, &mut purge) => Ok(()),
        };
        match result {
            Ok(()) => continue,
            Err(e) => {
                tracing::warn!(source = %relay.source_id, error = %e, "relay: retrying in {backoff:?}");
                relay.set_error(Some(&e));
                // A full disk fails the writer: room is made before it tries again.
                relay.purge_if_low_space(cfg.purge.remain_space);
                if started.elapsed() > MAX_BACKOFF * 3 {
                    backoff = Duration::from_millis(500);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Runs the automatic purge forever (raced against the pull, which it never interrupts
/// in a bad place: both only touch whole files).
async fn purge_ticks(relay: &Relay, cfg: &SourceConfig, purge: &mut tokio::time::Interval) {
    loop {
        purge.tick().await;
        relay.purge_by_policy(&cfg.purge);
    }
}

fn relay_err(relay: &Relay, message: String, retryable: bool) -> Error {
    Error::Relay {
        source_id: relay.source_id.clone(),
        message,
        retryable,
    }
}

/// One replica connection: returns `Ok` when paused, an error when the stream broke.
async fn pull(relay: &Relay, cfg: &SourceConfig) -> Result<()> {
    crate::durable::create_private_dir(&relay.dir).map_err(|e| {
        relay_err(
            relay,
            format!("cannot create {}: {e}", relay.dir.display()),
            true,
        )
    })?;
    let addr = cfg.from.addr();
    let map = |e| Error::db(DbRole::Source, &addr, e);
    let mut conn = crate::db::connect(&cfg.from, DbRole::Source).await?;
    let flavor = source_flavor(cfg, &mut conn).await?;
    relay.set_flavor(flavor);
    let start = start_position(relay, cfg, &mut conn, flavor).await?;
    let checksum = prepare_dump(&mut conn, flavor, &addr).await?;
    let mut out = Output::open(relay, &start, cfg.purge.remain_space)?;
    let request = BinlogStreamRequest::new(cfg.dump_server_id())
        .with_filename(start.name.as_bytes())
        .with_pos(start.pos);
    let mut stream = conn.get_binlog_stream(request).await.map_err(map)?;
    tracing::info!(source = %relay.source_id, from = %start, dir = %relay.dir.display(), "relay started");
    relay.set_stage(RelayStage::Running);
    let mut paused = relay.paused.subscribe();
    let mut seen_format = false;
    let mut healthy = false;
    loop {
        let next = match stream.next().now_or_never() {
            Some(n) => n,
            None => {
                out.publish(relay)?;
                tokio::select! {
                    n = tokio::time::timeout(Duration::from_secs(HEARTBEAT_SECS * 3), stream.next()) => match n {
                        Ok(n) => n,
                        Err(_) => return Err(relay_err(relay, "no event nor heartbeat from the source for 15 s".into(), true)),
                    },
                    _ = paused.changed() => {
                        if *paused.borrow() {
                            tracing::info!(source = %relay.source_id, at = %out.position(), "relay paused");
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
        };
        let ev = match next {
            None => {
                return Err(relay_err(
                    relay,
                    "the source closed the binlog stream".into(),
                    true,
                ))
            }
            Some(Err(e)) => {
                let purged = matches!(&e, mysql_async::Error::Server(se) if se.code == crate::error::errno::MASTER_FATAL_READING_BINLOG);
                return Err(Error::Binlog {
                    source_id: relay.source_id.clone(),
                    position: out.position().to_string(),
                    message: e.to_string(),
                    retryable: !purged,
                });
            }
            Some(Ok(ev)) => ev,
        };
        if !healthy {
            healthy = true;
            relay.set_error(None);
        }
        let kind = ev.header().event_type_raw();
        out.take(relay, &ev, checksum && !seen_format)?;
        seen_format |= kind == FORMAT_DESCRIPTION_EVENT;
        if *paused.borrow() {
            out.publish(relay)?;
            return Ok(());
        }
    }
}

/// Where to (re)start: right after the last whole event on disk; for an empty relay, the
/// file of `relay-binlog-name`, of the first position a subtask asks for, or else the
/// source's current file, from its start.
async fn start_position(
    relay: &Relay,
    cfg: &SourceConfig,
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
) -> Result<BinlogPos> {
    let io = |e: std::io::Error| relay_err(relay, format!("{}: {e}", relay.dir.display()), true);
    let names = files::list(&relay.dir).map_err(io)?;
    if let Some(last) = names.last() {
        let scan = files::scan(&relay.dir.join(last)).map_err(io)?;
        if scan.ends_with_rotate {
            if let Some(next) = files::next_name(last) {
                return Ok(BinlogPos { name: next, pos: 4 });
            }
        }
        return Ok(BinlogPos {
            name: last.clone(),
            pos: scan.end,
        });
    }
    if let Some(name) = &cfg.relay_binlog_name {
        return Ok(BinlogPos {
            name: name.clone(),
            pos: 4,
        });
    }
    relay.set_stage(RelayStage::Waiting);
    let asked = tokio::time::timeout(WAIT_FOR_SUBTASK, async {
        loop {
            if super::lock(&relay.wanted).is_some() {
                return;
            }
            relay.wanted_set.notified().await;
        }
    })
    .await;
    if asked.is_ok() {
        // Other subtasks of the source starting at the same time may want older files.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let wanted = super::lock(&relay.wanted).clone();
    let name = match wanted {
        Some(p) => p.name,
        None => {
            current_position(conn, flavor, &cfg.from.addr())
                .await?
                .binlog
                .name
        }
    };
    Ok(BinlogPos { name, pos: 4 })
}

const MARIADB_ANNOTATE_ROWS: u8 = 160;

/// An ANNOTATE_ROWS event of exactly `size` bytes ending at `end` (readers skip it: it only
/// carries the statement's text for people).
fn annotate_filler(size: u64, end: u64, server_id: u32, crc: bool) -> Option<Vec<u8>> {
    let fixed = files::HEADER_LEN as u64 + if crc { 4 } else { 0 };
    let text_len = size.checked_sub(fixed)?;
    u32::try_from(size).ok()?;
    let note = b"/* dm relay: annotation not sent by the source */";
    let text: Vec<u8> = note
        .iter()
        .copied()
        .chain(std::iter::repeat(b' '))
        .take(text_len as usize)
        .collect();
    let end = u32::try_from(end).ok()?;
    Some(files::event_bytes(
        MARIADB_ANNOTATE_ROWS,
        server_id,
        end,
        0,
        &text,
        crc,
    ))
}

/// The relay file being appended to.
struct Output {
    dir: std::path::PathBuf,
    name: String,
    /// End of the last whole event written (buffered or not).
    pos: u64,
    file: BufWriter<File>,
    buf: Vec<u8>,
    published: Instant,
    /// `pos` as last published.
    published_pos: u64,
    /// `purge.remain-space`: checked at each new file.
    remain_space: u64,
}

impl Output {
    fn open(relay: &Relay, at: &BinlogPos, remain_space: u64) -> Result<Output> {
        if !files::is_binlog_name(&at.name) {
            return Err(relay_err(
                relay,
                format!("`{}` is not a plain binlog file name (from relay-binlog-name, a checkpoint or the source's ROTATE event); nothing is written outside the relay dir", at.name),
                false,
            ));
        }
        let path = relay.dir.join(&at.name);
        let io = |e: std::io::Error| relay_err(relay, format!("{}: {e}", path.display()), true);
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        if at.pos <= 4 {
            f.set_len(0).map_err(io)?;
            f.write_all(MAGIC).map_err(io)?;
        } else {
            // Cuts a torn event off.
            f.set_len(at.pos).map_err(io)?;
            f.seek(SeekFrom::End(0)).map_err(io)?;
        }
        let pos = at.pos.max(4);
        let out = Output {
            dir: relay.dir.clone(),
            name: at.name.clone(),
            pos,
            file: BufWriter::with_capacity(1 << 20, f),
            buf: Vec::with_capacity(1 << 16),
            published: Instant::now(),
            published_pos: 0,
            remain_space,
        };
        relay.publish(out.position());
        Ok(out)
    }

    fn position(&self) -> BinlogPos {
        BinlogPos {
            name: self.name.clone(),
            pos: self.pos,
        }
    }

    /// Makes what was written visible to readers.
    fn publish(&mut self, relay: &Relay) -> Result<()> {
        if self.published_pos == self.pos {
            return Ok(());
        }
        self.file
            .flush()
            .map_err(|e| relay_err(relay, format!("writing {}: {e}", self.name), true))?;
        relay.publish(self.position());
        self.published = Instant::now();
        self.published_pos = self.pos;
        Ok(())
    }

    /// Appends one event from the stream; `crc_in_rotate`: a ROTATE before any format
    /// description still carries its checksum in the file name.
    fn take(&mut self, relay: &Relay, ev: &Event, crc_in_rotate: bool) -> Result<()> {
        let h = ev.header();
        let kind = h.event_type_raw();
        let log_pos = h.log_pos() as u64;
        if kind == HEARTBEAT_EVENT {
            return self.publish(relay);
        }
        let artificial = log_pos == 0 || h.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
        if artificial {
            if kind == ROTATE_EVENT {
                let r: RotateEvent = ev
                    .read_event()
                    .map_err(|e| relay_err(relay, format!("bad ROTATE event: {e}"), true))?;
                let mut name = r.name_raw().to_vec();
                if crc_in_rotate && name.len() > 4 {
                    name.truncate(name.len() - 4);
                }
                let name = String::from_utf8_lossy(&name).into_owned();
                if name != self.name {
                    self.switch(relay, &name, r.position())?;
                }
            }
            return Ok(());
        }
        // Sent again when a dump starts mid-file; the file has it already.
        if kind == FORMAT_DESCRIPTION_EVENT && self.pos > 4 {
            return Ok(());
        }
        let size = h.event_size() as u64;
        if log_pos > self.pos + size {
            // MariaDB leaves ANNOTATE_ROWS events out of a dump unless asked (and mysql_async
            // cannot ask): a stand-in of the same size keeps every offset the source's.
            let gap = log_pos - size - self.pos;
            let crc = files::has_crc32(ev.footer());
            let filler =
                annotate_filler(gap, self.pos + gap, h.server_id(), crc).ok_or_else(|| {
                    relay_err(
                        relay,
                        format!(
                            "a gap of {gap} bytes before {}:{log_pos} is too small for any event",
                            self.name
                        ),
                        true,
                    )
                })?;
            self.file
                .write_all(&filler)
                .map_err(|e| relay_err(relay, format!("writing {}: {e}", self.name), true))?;
            self.pos += gap;
        }
        if log_pos != self.pos + size {
            return Err(relay_err(
                relay,
                format!(
                    "event of {size} bytes ending at {}:{log_pos} does not follow {}:{}",
                    self.name, self.name, self.pos
                ),
                true,
            ));
        }
        self.buf.clear();
        ev.write(BinlogVersion::Version4, &mut self.buf)
            .map_err(|e| relay_err(relay, format!("cannot encode an event: {e}"), false))?;
        if self.buf.len() as u64 != size {
            return Err(relay_err(
                relay,
                format!(
                    "event at {}:{} re-encodes to {} bytes, not {size}",
                    self.name,
                    self.pos,
                    self.buf.len()
                ),
                false,
            ));
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| relay_err(relay, format!("writing {}: {e}", self.name), true))?;
        self.pos = log_pos;
        if kind == ROTATE_EVENT {
            let r: RotateEvent = ev
                .read_event()
                .map_err(|e| relay_err(relay, format!("bad ROTATE event: {e}"), true))?;
            let next = r.name().into_owned();
            self.switch(relay, &next, r.position())?;
        } else if self.published.elapsed() >= PUBLISH_EVERY {
            self.publish(relay)?;
        }
        Ok(())
    }

    /// Finishes the current file and goes on in `name` (from its start).
    fn switch(&mut self, relay: &Relay, name: &str, pos: u64) -> Result<()> {
        self.publish(relay)?;
        let io = |e: std::io::Error| relay_err(relay, format!("{name}: {e}"), true);
        self.file.get_ref().sync_data().map_err(io)?;
        if pos > 4 && !self.dir.join(name).exists() {
            return Err(relay_err(
                relay,
                format!("the source switched to {name}:{pos}, which the relay does not have from its start"),
                false,
            ));
        }
        // Files the tasks no longer need go first when the disk runs low.
        relay.purge_if_low_space(self.remain_space);
        *self = Output::open(
            relay,
            &BinlogPos {
                name: name.to_string(),
                pos,
            },
            self.remain_space,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filler_has_exactly_the_size_of_the_gap() {
        for crc in [false, true] {
            let ev = annotate_filler(100, 1000, 7, crc).unwrap();
            assert_eq!(ev.len(), 100);
            assert_eq!(files::parse_header(&ev), (100, MARIADB_ANNOTATE_ROWS));
            assert_eq!(u32::from_le_bytes(ev[13..17].try_into().unwrap()), 1000);
        }
        assert!(annotate_filler(20, 1000, 7, true).is_none());
        assert_eq!(annotate_filler(23, 1000, 7, true).unwrap().len(), 23);
    }
}
