//! dm plugin SDK: the wire types shared by the host (dm) and WASM guests, the binary encoding
//! (postcard) defined once here, and the macros that turn a plain function into a plugin.
//!
//! A row filter is a few lines:
//! ```ignore
//! use dm_plugin_sdk::*;
//! #[row_filter]
//! fn keep(row: &RowChange) -> Verdict {
//!     if row.get("deleted") == Some(&Value::Int(1)) { Verdict::Drop } else { Verdict::Keep }
//! }
//! ```
//! Build it with `cargo build --release --target wasm32-unknown-unknown` (crate-type
//! `cdylib`) and name the `.wasm` in the task file's `plugins:` section.
//!
//! ABI (version [`ABI_VERSION`]): the guest exports `dm_abi_version() -> u32`,
//! `dm_hooks() -> u32` (bits: [`HOOK_ROW_FILTER`], [`HOOK_TABLE_ROUTER`],
//! [`HOOK_SHARD_DDL_POLICY`]), `dm_alloc(len) -> ptr`, `dm_free(ptr, len)`, and per hook a
//! function taking `(ptr, len)` of an encoded request and returning `ptr << 32 | len` of an
//! encoded answer in guest memory: `dm_row_filter` (`RowBatch` -> `Vec<Verdict>`), `dm_route`
//! (`TableRef` -> `TableRef`), `dm_shard_ddl` (`LockInfo` -> `Decision`), and `dm_init`
//! (the task file's `config:` of the plugin as JSON text -> `Result<(), String>`), called
//! once per instance before anything else when the task gives a config; the plugin reads it
//! with [`config`].

pub use dm_plugin_sdk_macros::{row_filter, shard_ddl_policy, table_router};
pub use row_view::RowChange;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

mod row_view;

/// The ABI this SDK speaks; the host refuses plugins built for another.
pub const ABI_VERSION: u32 = 1;

pub const HOOK_ROW_FILTER: u32 = 1;
pub const HOOK_TABLE_ROUTER: u32 = 2;
pub const HOOK_SHARD_DDL_POLICY: u32 = 4;

/// A column value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Exact decimal text.
    Decimal(String),
    /// Strings (UTF-8 in the column's character set as stored) and binaries. Encoded as one
    /// byte string, not a sequence of bytes one by one: the same bytes on the wire (postcard
    /// writes both as a length and the bytes), so plugins built before read it as they did,
    /// but about ten times faster for a 200-byte value.
    #[serde(with = "serde_bytes")]
    Bytes(Vec<u8>),
    /// A date, time or datetime in SQL text form.
    Temporal(String),
}

impl Value {
    /// The value as text, for string columns.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            Value::Decimal(s) | Value::Temporal(s) => Some(s),
            _ => None,
        }
    }

    pub fn text(s: impl Into<String>) -> Value {
        Value::Bytes(s.into().into_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub table: String,
}

/// One row change of a table as it travels: its images by column. A row filter reads it as a
/// [`RowChange`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRow {
    pub op: Op,
    /// Old image (updates, deletes).
    pub before: Option<Vec<Value>>,
    /// New image (inserts, updates; the copied row in the full phase).
    pub after: Option<Vec<Value>>,
}

/// The rows a filter is called with: one table, many changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowBatch {
    pub table: TableRef,
    pub columns: Vec<String>,
    pub rows: Vec<WireRow>,
}

/// What a row filter says of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    Keep,
    Drop,
    /// Keep it with these columns set (in both images).
    Set(Vec<(String, Value)>),
}

/// A shard of a merged table and the DDL it sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardDdl {
    pub source: String,
    pub table: String,
    pub ddls: Vec<String>,
}

/// What a shard DDL policy sees (see dm's `ShardDdlPolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub task: String,
    pub target: String,
    /// Every shard as (source, table).
    pub shards: Vec<(String, String)>,
    pub pending: Vec<ShardDdl>,
    pub executed: Vec<Vec<String>>,
}

/// A shard DDL policy's answer; shards are (source, table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Wait,
    Exec {
        ddls: Vec<String>,
        release: Vec<(String, String)>,
    },
    Skip {
        release: Vec<(String, String)>,
    },
    Conflict {
        shards: Vec<(String, String)>,
        message: String,
    },
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("encodable")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

static CONFIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The plugin's `config:` from the task file, as JSON text (`None` without one).
pub fn config() -> Option<&'static str> {
    CONFIG.get().map(String::as_str)
}

/// Guest-side plumbing used by the macros.
#[doc(hidden)]
pub mod guest {
    use super::*;

    use std::cell::RefCell;

    // A call's request and answer live in two buffers the guest keeps from call to call: a
    // call allocates nothing of its own (the allocator was most of a pass-through filter's
    // time). The host's protocol is unchanged: `dm_alloc` gives the request buffer, the hook
    // reads it, `dm_free` releases the answer.
    thread_local! {
        static REQUEST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer kept for the next call gives back memory a rare big call took.
    fn make_room(buf: &mut Vec<u8>, len: usize) {
        buf.clear();
        if buf.capacity() > (1 << 20) && len < buf.capacity() / 4 {
            buf.shrink_to(len);
        }
        buf.reserve(len);
    }

    /// Room for a request of `len` bytes: the request buffer, zeroed (the host then writes
    /// into initialised memory).
    pub fn request_buffer(len: usize) -> *mut u8 {
        REQUEST.with_borrow_mut(|buf| {
            make_room(buf, len);
            buf.resize(len, 0);
            buf.as_mut_ptr()
        })
    }

    /// Reads the `len` bytes the host wrote at `ptr`, which `request_buffer` gave.
    pub fn with_request<R>(ptr: *const u8, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        REQUEST.with_borrow(|buf| {
            assert!(
                ptr == buf.as_ptr() && len <= buf.len(),
                "a request outside the request buffer"
            );
            f(&buf[..len])
        })
    }

    /// Writes the answer into the answer buffer: its address and length.
    pub fn answer_with(write: impl FnOnce(&mut Vec<u8>)) -> (*const u8, usize) {
        ANSWER.with_borrow_mut(|buf| {
            make_room(buf, 0);
            write(buf);
            (buf.as_ptr(), buf.len())
        })
    }

    /// `ptr << 32 | len`, as a hook returns its answer.
    fn packed((ptr, len): (*const u8, usize)) -> u64 {
        ((ptr as u64) << 32) | len as u64
    }

    /// Memory the host writes a request into.
    pub fn alloc(len: u32) -> u32 {
        request_buffer(len as usize) as u32
    }

    /// The host is done with an answer. The answer buffer stays for the next call.
    pub fn free(_ptr: u32, _len: u32) {}

    /// The request the host wrote at `ptr` (from `alloc`).
    pub fn request<T: DeserializeOwned>(ptr: u32, len: u32) -> T {
        with_request(ptr as *const u8, len as usize, decode)
            .expect("the host sent a malformed request")
    }

    /// Leaves the encoded answer in memory for the host: `ptr << 32 | len`.
    pub fn answer<T: Serialize>(v: &T) -> u64 {
        packed(answer_with(|buf| {
            *buf = postcard::to_extend(v, std::mem::take(buf)).expect("encodable");
        }))
    }

    pub fn init(ptr: u32, len: u32) -> u64 {
        let text: String = request(ptr, len);
        let _ = super::CONFIG.set(text);
        answer(&Ok::<(), String>(()))
    }

    pub fn filter(ptr: u32, len: u32, f: impl Fn(&RowChange<'_>) -> Verdict) -> u64 {
        packed(answer_with(|buf| {
            with_request(ptr as *const u8, len as usize, |r| {
                row_view::filter_request(r, f, buf)
            })
            .expect("the host sent a malformed request")
        }))
    }
}

/// Exports the ABI functions every plugin has; `$hooks` are the hook bits it implements.
#[doc(hidden)]
#[macro_export]
macro_rules! __dm_plugin_base {
    ($hooks:expr) => {
        #[no_mangle]
        pub extern "C" fn dm_abi_version() -> u32 {
            $crate::ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn dm_hooks() -> u32 {
            $hooks
        }
        #[no_mangle]
        pub extern "C" fn dm_alloc(len: u32) -> u32 {
            $crate::guest::alloc(len)
        }
        #[no_mangle]
        pub extern "C" fn dm_free(ptr: u32, len: u32) {
            $crate::guest::free(ptr, len)
        }
        #[no_mangle]
        pub extern "C" fn dm_init(ptr: u32, len: u32) -> u64 {
            $crate::guest::init(ptr, len)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_row_filter {
    ($f:path) => {
        $crate::__dm_plugin_base!($crate::HOOK_ROW_FILTER);
        #[no_mangle]
        pub extern "C" fn dm_row_filter(ptr: u32, len: u32) -> u64 {
            $crate::guest::filter(ptr, len, $f)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_table_router {
    ($f:path) => {
        $crate::__dm_plugin_base!($crate::HOOK_TABLE_ROUTER);
        #[no_mangle]
        pub extern "C" fn dm_route(ptr: u32, len: u32) -> u64 {
            let t: $crate::TableRef = $crate::guest::request(ptr, len);
            $crate::guest::answer(&$f(&t))
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_shard_ddl_policy {
    ($f:path) => {
        $crate::__dm_plugin_base!($crate::HOOK_SHARD_DDL_POLICY);
        #[no_mangle]
        pub extern "C" fn dm_shard_ddl(ptr: u32, len: u32) -> u64 {
            let l: $crate::LockInfo = $crate::guest::request(ptr, len);
            $crate::guest::answer(&$f(&l))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Value` as ABI 1 plugins were built with it: `Bytes` a sequence of bytes.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum ValueBefore {
        Null,
        Int(i64),
        UInt(u64),
        Float(f64),
        Decimal(String),
        Bytes(Vec<u8>),
        Temporal(String),
    }

    #[test]
    fn bytes_are_the_same_on_the_wire_as_for_plugins_built_before() {
        let bytes: Vec<u8> = (0..=255).chain(0..200).collect();
        let now = encode(&Value::Bytes(bytes.clone()));
        assert_eq!(now, encode(&ValueBefore::Bytes(bytes.clone())));
        assert_eq!(
            decode::<ValueBefore>(&now).unwrap(),
            ValueBefore::Bytes(bytes.clone())
        );
        let verdict = encode(&vec![Verdict::Set(vec![("c".into(), Value::text("x"))])]);
        let before: Vec<(String, ValueBefore)> =
            vec![("c".into(), ValueBefore::Bytes(b"x".to_vec()))];
        let mut old = encode(&before);
        // `Verdict::Set` is variant 2, one verdict.
        old.splice(0..0, [1, 2]);
        assert_eq!(verdict, old);
    }

    #[test]
    fn calls_reuse_the_request_and_answer_buffers() {
        let mut places = Vec::new();
        for config in ["{}", "{\"column\": \"email\"}", "{}"] {
            let request = encode(&config.to_string());
            let ptr = guest::request_buffer(request.len());
            // SAFETY: the buffer has room for the request, as the host writes it.
            unsafe { std::ptr::copy_nonoverlapping(request.as_ptr(), ptr, request.len()) };
            let text = guest::with_request(ptr, request.len(), decode::<String>);
            assert_eq!(text.unwrap(), config);
            let (answer, len) = guest::answer_with(|buf| buf.extend_from_slice(b"ok"));
            // SAFETY: the answer buffer holds `len` bytes until the next call.
            assert_eq!(unsafe { std::slice::from_raw_parts(answer, len) }, b"ok");
            places.push((ptr as usize, answer as usize));
        }
        // The second request is bigger than the first: its buffer may move; then it stays.
        assert_eq!(places[1], places[2]);
    }
}
