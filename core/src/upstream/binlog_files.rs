//! Binlog files on disk as an event stream: files a server wrote (archived, or recorded from
//! MySQL servers for tests), read in order, each from its magic header and format
//! description, with checksums verified as the file's format description says.

use crate::position::BinlogPos;
use crate::upstream::relay::files;
use mysql_async::binlog::events::{Event, TableMapEvent};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::{BinlogFileHeader, EventStreamReader};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub struct FileEvents {
    /// Where files after the last one read may still appear.
    dir: Option<PathBuf>,
    files: VecDeque<PathBuf>,
    /// Events of the first file ending at or before this offset are read (format description,
    /// table maps) but not handed out: the stream starts after them.
    skip_to: u64,
    current: Option<(BufReader<File>, EventStreamReader)>,
    /// The file being read (its name, as positions name it) and the offset of its next event.
    name: String,
    offset: u64,
}

/// An event and whether it is the first of a new file (named `FileEvents::name`).
pub struct FileEvent {
    pub event: Event,
    pub new_file: bool,
}

impl FileEvents {
    pub fn new(files: Vec<PathBuf>) -> Self {
        FileEvents {
            dir: None,
            skip_to: 0,
            files: files.into(),
            current: None,
            name: String::new(),
            offset: 0,
        }
    }

    /// The binlog files of `dir` from `start` on (its first file when `start` names none);
    /// files added to `dir` later are read when the stream gets to them.
    pub fn in_dir(dir: &Path, start: &BinlogPos) -> Result<Self, String> {
        let names = files::list(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let from = files::index(&start.name);
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| start.name.is_empty() || files::index(n) >= from)
            .collect();
        match names.first() {
            None => return Err(format!("{} holds no binlog files", dir.display())),
            Some(first) if !start.name.is_empty() && *first != start.name => {
                return Err(format!(
                    "{} does not hold {}, where the stream starts (its next file is {first})",
                    dir.display(),
                    start.name
                ))
            }
            Some(_) => {}
        }
        let mut events = FileEvents::new(names.iter().map(|n| dir.join(n)).collect());
        events.dir = Some(dir.to_path_buf());
        events.skip_to = start.pos;
        Ok(events)
    }

    /// Files of the directory after the one being read.
    fn more_files(&mut self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let last = files::index(&self.name);
        let names = files::list(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.files = names
            .into_iter()
            .filter(|n| files::index(n) > last)
            .map(|n| dir.join(n))
            .collect();
        Ok(())
    }

    /// Whether files added to the directory later are read (`in_dir`).
    pub fn follows_dir(&self) -> bool {
        self.dir.is_some()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event; `None` past the end of the last file. An error says what is wrong
    /// with the file (not a binlog, a corrupt or truncated event).
    pub fn next(&mut self) -> Result<Option<FileEvent>, String> {
        let mut new_file = false;
        loop {
            if self.current.is_none() {
                if self.files.is_empty() {
                    self.more_files()?;
                }
                let Some(path) = self.files.pop_front() else {
                    return Ok(None);
                };
                if !self.name.is_empty() {
                    // Only the first file starts at a position.
                    self.skip_to = 0;
                }
                self.name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut read = BufReader::new(file);
                BinlogFileHeader::read(&mut read)
                    .map_err(|e| format!("{}: not a binlog file: {e}", path.display()))?;
                self.current = Some((read, EventStreamReader::new(BinlogVersion::Version4)));
                self.offset = 4;
                new_file = true;
            }
            let Some((read, events)) = self.current.as_mut() else {
                continue;
            };
            // What is at the offset: a whole event (read as it is: the usual case costs no
            // more than the read), part of one, or nothing more.
            let partial = match events.read(&mut *read) {
                Ok(Some(event)) => {
                    self.offset += u64::from(event.header().event_size());
                    if self.offset <= self.skip_to {
                        continue;
                    }
                    return Ok(Some(FileEvent { event, new_file }));
                }
                Ok(None) => false,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    // Read again from its start once more of it is there.
                    if let Err(e) = read.seek(SeekFrom::Start(self.offset)) {
                        return Err(format!("{}:{}: {e}", self.name, self.offset));
                    }
                    true
                }
                Err(e) => {
                    return Err(format!(
                        "{}:{}: a corrupt event: {e}",
                        self.name, self.offset
                    ))
                }
            };
            // A file of a followed directory may still be written (by the server or the
            // archiver copying it): it is done once a later file is there.
            if self.dir.is_some() {
                self.more_files()?;
                if self.files.is_empty() {
                    return Ok(None);
                }
            }
            if partial {
                return Err(format!(
                    "{}:{}: the file ends inside an event (truncated: the server stopped while writing it)",
                    self.name, self.offset
                ));
            }
            self.current = None;
        }
    }

    pub fn get_tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.current.as_ref()?.1.get_tme(table_id)
    }
}
