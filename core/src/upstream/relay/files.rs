//! The relay log on disk: one directory per source holding the source's binlog files under
//! their own names, event for event at the same offsets (so a position means the same in the
//! relay and on the source), plus `needed.json`: per task, the oldest position it may still
//! read, which purging respects even while the task is paused or the worker restarts.

use crate::position::BinlogPos;
use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// What every binlog file starts with.
pub const MAGIC: &[u8; 4] = b"\xfebin";
/// Length of an event header (v4).
pub const HEADER_LEN: usize = 19;
pub const ROTATE_EVENT: u8 = 4;
pub const FORMAT_DESCRIPTION_EVENT: u8 = 15;
/// Set on events a server makes up for a stream; never in a file.
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
pub const NEEDED: &str = "needed.json";

pub use crate::position::{binlog_index as index, is_binlog_name};

/// The binlog files in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = vec![];
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let name = e?.file_name().to_string_lossy().into_owned();
                if index(&name).is_some() {
                    names.push(name);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort_by_key(|n| index(n));
    Ok(names)
}

/// An event as a server writes it: a v4 header ending at `log_pos`, `body`, and its CRC32
/// when the file's events carry one.
pub fn event_bytes(
    kind: u8,
    server_id: u32,
    log_pos: u32,
    flags: u16,
    body: &[u8],
    crc: bool,
) -> Vec<u8> {
    let size = HEADER_LEN + body.len() + if crc { 4 } else { 0 };
    let mut ev = Vec::with_capacity(size);
    ev.extend(0u32.to_le_bytes());
    ev.push(kind);
    ev.extend(server_id.to_le_bytes());
    ev.extend((size as u32).to_le_bytes());
    ev.extend(log_pos.to_le_bytes());
    ev.extend(flags.to_le_bytes());
    ev.extend(body);
    if crc {
        let sum = crc32fast::hash(&ev);
        ev.extend(sum.to_le_bytes());
    }
    ev
}

/// Whether events described by this footer end with a CRC32.
pub fn has_crc32(footer: mysql_async::binlog::events::BinlogEventFooter) -> bool {
    matches!(
        footer.get_checksum_alg(),
        Ok(Some(
            mysql_async::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32
        ))
    )
}

/// Event size and type from a header.
pub fn parse_header(h: &[u8]) -> (u64, u8) {
    let size = u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as u64;
    (size, h[4])
}

/// Where the whole events of a relay file end.
#[derive(Debug, PartialEq)]
pub struct Scan {
    /// Bytes after this are a torn write (a crash mid-event) and get cut off.
    pub end: u64,
    /// The last whole event rotates to the next file: this file is complete.
    pub ends_with_rotate: bool,
}

/// Walks the event headers of a relay file.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let len = std::fs::metadata(path)?.len();
    let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut magic = [0u8; 4];
    if len < 4 || {
        r.read_exact(&mut magic)?;
        &magic != MAGIC
    } {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a binlog file", path.display()),
        ));
    }
    let mut at = 4u64;
    let mut ends_with_rotate = false;
    let mut h = [0u8; HEADER_LEN];
    while at + HEADER_LEN as u64 <= len {
        r.read_exact(&mut h)?;
        let (size, kind) = parse_header(&h);
        if size < HEADER_LEN as u64 || at + size > len {
            break;
        }
        r.seek_relative(size as i64 - HEADER_LEN as i64)?;
        at += size;
        ends_with_rotate = kind == ROTATE_EVENT;
    }
    Ok(Scan {
        end: at,
        ends_with_rotate,
    })
}

/// The file after `name`: `mysql-bin.000009` -> `mysql-bin.000010`.
pub fn next_name(name: &str) -> Option<String> {
    let (base, ext) = name.rsplit_once('.')?;
    let n = index(name)? + 1;
    Some(format!("{base}.{n:0width$}", width = ext.len()))
}

/// Per task, the oldest position it may read again; `Err` when the file is there but cannot
/// be read (the caller must then keep every file).
pub fn load_needed(dir: &Path) -> io::Result<BTreeMap<String, BinlogPos>> {
    match std::fs::read(dir.join(NEEDED)) {
        Ok(b) => serde_json::from_slice(&b).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// Written atomically and durably: a crash leaves the old or the new map.
pub fn save_needed(dir: &Path, needed: &BTreeMap<String, BinlogPos>) -> io::Result<()> {
    let bytes = serde_json::to_vec(needed).map_err(io::Error::other)?;
    crate::durable::write_atomically(&dir.join(NEEDED), &bytes)
}

/// Bytes free for an unprivileged user on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-struct that statvfs fills.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Reads `buf.len()` bytes at `offset` (a short file is an error).
pub fn read_at(f: &std::fs::File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_binlog_names() {
        assert!(is_binlog_name("mysql-bin.000042"));
        for bad in [
            "../../x.000001",
            "/tmp/evil.000001",
            ".hidden.000001",
            "x",
            "a/b.000001",
            "",
        ] {
            assert!(!is_binlog_name(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_order() {
        assert_eq!(index("mysql-bin.000042"), Some(42));
        assert_eq!(index("needed.json"), None);
        assert_eq!(
            next_name("mysql-bin.000009").as_deref(),
            Some("mysql-bin.000010")
        );
        assert_eq!(next_name("b.999999").as_deref(), Some("b.1000000"));
    }

    #[test]
    fn scan_cuts_a_torn_event() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.000001");
        let mut bytes = MAGIC.to_vec();
        let mut ev = vec![0u8; 30];
        ev[4] = ROTATE_EVENT;
        ev[9..13].copy_from_slice(&30u32.to_le_bytes());
        bytes.extend(&ev);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            scan(&p).unwrap(),
            Scan {
                end: 34,
                ends_with_rotate: true
            }
        );
        bytes.extend(&ev[..25]);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(scan(&p).unwrap().end, 34);
    }
}
