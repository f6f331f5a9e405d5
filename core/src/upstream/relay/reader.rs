//! A subtask's view of the relay: the events from a position on, tailing the file being
//! written up to where its events are whole and following ROTATE events to the next file.

use super::files::{self, parse_header, HEADER_LEN, LOG_EVENT_ARTIFICIAL_F, ROTATE_EVENT};
use super::Relay;
use crate::error::{Error, Result};
use crate::position::BinlogPos;
use mysql_async::binlog::events::{Event, RotateEvent, TableMapEvent};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::EventStreamReader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// With nothing new for this long, `next` says the relay is quiet.
const IDLE: Duration = Duration::from_secs(1);
/// Bytes read from a file at once.
const READ_AHEAD: u64 = 1 << 20;

pub struct RelayReader {
    relay: Arc<Relay>,
    written: watch::Receiver<Option<BinlogPos>>,
    name: String,
    /// Offset of the next event in `name`.
    pos: u64,
    file: Option<std::fs::File>,
    /// The length of `name` once the relay has gone past it (it does not change any more).
    complete_len: Option<u64>,
    /// Bytes of `file` from offset `buf_at` on.
    buf: Vec<u8>,
    buf_at: u64,
    events: EventStreamReader,
}

impl RelayReader {
    /// Reads from `start` (an event boundary) once the relay has it; `None` if the relay
    /// starts after it (its file was purged or never relayed).
    pub async fn open(relay: Arc<Relay>, start: &BinlogPos) -> Result<Option<RelayReader>> {
        if !relay.covers(start) {
            return Ok(None);
        }
        relay.want(start);
        let mut written = relay.written.subscribe();
        loop {
            let reached = written
                .borrow_and_update()
                .as_ref()
                .map(|w| (files::index(&w.name), w.pos) >= (files::index(&start.name), start.pos));
            if reached == Some(true) {
                break;
            }
            if !relay.covers(start) {
                return Ok(None);
            }
            if written.changed().await.is_err() {
                return Err(stopped(&relay));
            }
        }
        let mut r = RelayReader {
            relay,
            written,
            name: start.name.clone(),
            pos: 4,
            file: None,
            complete_len: None,
            buf: Vec::new(),
            buf_at: 0,
            events: EventStreamReader::new(BinlogVersion::Version4),
        };
        if start.pos > 4 {
            // The format description (checksums, header sizes) comes first in every file.
            if r.try_read()?.is_none() {
                return Err(r.err(format!("{} has no format description event", start.name)));
            }
            r.pos = start.pos;
        }
        Ok(Some(r))
    }

    /// The next event, or `None` when the relay has had nothing new for a second.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        let idle = tokio::time::Instant::now() + IDLE;
        loop {
            if let Some(ev) = self.try_read()? {
                return Ok(Some(ev));
            }
            match tokio::time::timeout_at(idle, self.written.changed()).await {
                Err(_) => return Ok(None),
                Ok(Err(_)) => return Err(stopped(&self.relay)),
                Ok(Ok(())) => {}
            }
        }
    }

    pub fn get_tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.events.get_tme(table_id)
    }

    fn err(&self, message: String) -> Error {
        Error::Relay {
            source_id: self.relay.source_id.clone(),
            message: format!("reading {}:{}: {message}", self.name, self.pos),
            retryable: true,
        }
    }

    /// How far `name` holds whole events, and whether the relay is past it (it is complete).
    fn readable_end(&mut self) -> Result<(u64, bool)> {
        if let Some(len) = self.complete_len {
            return Ok((len, true));
        }
        let w = self.written.borrow_and_update().clone();
        Ok(match w {
            Some(w) if w.name == self.name => (w.pos, false),
            Some(w) if files::index(&w.name) > files::index(&self.name) => {
                match std::fs::metadata(self.relay.dir.join(&self.name)) {
                    Ok(m) => {
                        self.complete_len = Some(m.len());
                        (m.len(), true)
                    }
                    Err(e) => return Err(self.err(e.to_string())),
                }
            }
            _ => (0, false),
        })
    }

    /// Goes on at the start of relay file `name`.
    fn go_to(&mut self, name: String) {
        self.name = name;
        self.pos = 4;
        self.file = None;
        self.complete_len = None;
        self.buf.clear();
    }

    /// The next whole event if the relay has it.
    fn try_read(&mut self) -> Result<Option<Event>> {
        let (end, complete) = self.readable_end()?;
        if complete && self.pos >= end {
            // A file that ends without a ROTATE (the source stopped): the stream goes on in
            // the next file, announced the way a server does, by an artificial ROTATE.
            let names = files::list(&self.relay.dir).map_err(|e| self.err(e.to_string()))?;
            let here = files::index(&self.name);
            if let Some(next) = names.into_iter().find(|n| files::index(n) > here) {
                let ev = self.artificial_rotate(&next)?;
                self.go_to(next);
                return Ok(Some(ev));
            }
            return Ok(None);
        }
        if self.pos + HEADER_LEN as u64 > end {
            return Ok(None);
        }
        let header = self.bytes(self.pos, HEADER_LEN as u64, end)?;
        let (size, kind) = parse_header(&self.buf[header]);
        if size < HEADER_LEN as u64 {
            return Err(self.err(format!("event header says {size} bytes")));
        }
        if self.pos + size > end {
            return Ok(None);
        }
        let at = self.pos;
        let bytes = self.bytes(at, size, end)?;
        let ev = match self.events.read(&self.buf[bytes]) {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.err(e.to_string())),
        };
        self.pos += size;
        if kind == ROTATE_EVENT {
            let r: RotateEvent = ev.read_event().map_err(|e| self.err(e.to_string()))?;
            self.go_to(r.name().into_owned());
        }
        Ok(Some(ev))
    }

    /// A ROTATE event to `next` as a server sends it at a file switch (`log_pos` 0).
    fn artificial_rotate(&mut self, next: &str) -> Result<Event> {
        let crc = files::has_crc32(self.events.get_fde().footer());
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend(next.as_bytes());
        let ev = files::event_bytes(ROTATE_EVENT, 0, 0, LOG_EVENT_ARTIFICIAL_F, &body, crc);
        match self.events.read(&ev[..]) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(self.err("an empty ROTATE".into())),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    /// Where in `buf` the `len` bytes at `at` are, reading ahead up to `end`.
    fn bytes(&mut self, at: u64, len: u64, end: u64) -> Result<std::ops::Range<usize>> {
        let cached = at >= self.buf_at && at + len <= self.buf_at + self.buf.len() as u64;
        if !cached {
            if self.file.is_none() {
                let path = self.relay.dir.join(&self.name);
                self.file = Some(std::fs::File::open(&path).map_err(|e| self.err(e.to_string()))?);
            }
            let n = len.max(READ_AHEAD.min(end - at));
            self.buf.resize(n as usize, 0);
            let f = self.file.as_ref().expect("opened above");
            if let Err(e) = files::read_at(f, at, &mut self.buf) {
                self.buf.clear();
                return Err(self.err(e.to_string()));
            }
            self.buf_at = at;
        }
        let from = (at - self.buf_at) as usize;
        Ok(from..from + len as usize)
    }
}

fn stopped(relay: &Relay) -> Error {
    Error::Relay {
        source_id: relay.source_id.clone(),
        message: "the relay stopped".into(),
        retryable: true,
    }
}
