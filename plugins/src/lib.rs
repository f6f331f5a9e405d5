//! dm-plugins: the wasmtime host behind dm-core's hooks. A plugin is a core WASM module built
//! with `dm-plugin-sdk` (ABI in the sdk's docs).
//!
//! Each call has a wall-clock deadline (epoch interruption: a ticker thread advances the
//! engine's epoch every 10 ms while a guest runs) and each instance a memory cap (`StoreLimits`). A trap, a
//! timeout, an out-of-memory or a malformed answer is an error naming what happened; the
//! instance is thrown away and a fresh one serves the next call. Compiled modules are cached
//! by content, so loading the same file again (a restart, another source) costs nothing.

mod convert;
mod reload;

pub use reload::Reloading;

use dm_core::hooks::{
    Decision, HookRow, LoadedPlugin, LockView, PluginError, PluginHost, PluginSpec, RowFilter,
    RowVerdict, ShardDdlPolicy, ShardId, TableRouter,
};
use dm_core::table::Table;
use dm_core::table::TableName;
use dm_plugin_sdk as sdk;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, Trap,
    TypedFunc,
};

/// The largest request buffer a plugin keeps between row filter calls.
const MAX_KEPT_REQUEST: usize = 1 << 20;

/// How often the epoch advances: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(10);
/// Entries of a plugin's function table: a Rust plugin has a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Advances the engine's epoch every `TICK` while guests run, and for a second after the
/// last call started, then sleeps until the next call, so an idle dm does not wake up a
/// hundred times a second. The grace second matters: waking the thread for each call (a futex
/// wake and a context switch per row event) cost more than the call itself.
struct Ticker {
    /// Guest calls running now (shared with the ticker thread).
    in_flight: Arc<AtomicUsize>,
    /// Guest calls started so far.
    started: Arc<AtomicU64>,
    /// Whether the ticker thread sleeps (or is about to) until a call wakes it.
    parked: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

/// A guest may run while this lives.
struct Busy<'a>(&'a Ticker);

/// Ticks in which no call started before the ticker sleeps.
const IDLE_TICKS: u32 = 100;

impl Ticker {
    /// The thread ends once the engine is gone.
    fn start(engine: &Engine) -> Arc<Ticker> {
        let weak = engine.weak();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let parked = Arc::new(AtomicBool::new(false));
        let (calls, starts, asleep) = (in_flight.clone(), started.clone(), parked.clone());
        let handle = std::thread::Builder::new()
            .name("dm-plugin-epoch".into())
            .spawn(move || {
                let (mut idle, mut seen) = (0, 0);
                while let Some(engine) = weak.upgrade() {
                    let now = starts.load(Ordering::Relaxed);
                    idle = if calls.load(Ordering::SeqCst) == 0 && now == seen {
                        idle + 1
                    } else {
                        0
                    };
                    seen = now;
                    if idle > IDLE_TICKS {
                        drop(engine);
                        // Say so before looking once more: a call that starts now either
                        // sees `parked` and wakes this thread, or is seen here.
                        asleep.store(true, Ordering::SeqCst);
                        if calls.load(Ordering::SeqCst) == 0 {
                            std::thread::park_timeout(Duration::from_secs(1));
                        }
                        asleep.store(false, Ordering::SeqCst);
                        idle = 0;
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .expect("a thread");
        Arc::new(Ticker {
            in_flight,
            started,
            parked,
            thread: handle.thread().clone(),
        })
    }

    fn busy(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::Relaxed);
        if self.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        Busy(self)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Cheap to clone: clones share the engine and the module cache.
#[derive(Clone)]
pub struct WasmHost {
    engine: Engine,
    ticker: Arc<Ticker>,
    modules: Arc<Mutex<HashMap<[u8; 32], Module>>>,
}

impl Default for WasmHost {
    fn default() -> Self {
        Self::new()
    }
}

impl WasmHost {
    pub fn new() -> Self {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // A plugin gets one memory (bounded by `memory`) and one table; nothing more to ask.
        config.wasm_multi_memory(false);
        let engine = Engine::new(&config).expect("a default wasmtime engine");
        WasmHost {
            ticker: Ticker::start(&engine),
            engine,
            modules: Arc::default(),
        }
    }

    fn module(&self, bytes: &[u8]) -> Result<Module, PluginError> {
        // By content: two modules never share an entry (a 64-bit hash could collide).
        let key: [u8; 32] = sha2::Sha256::digest(bytes).into();
        let mut cache = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let m = Module::new(&self.engine, bytes)
            .map_err(|e| PluginError::Unusable(format!("not a WASM module dm can run: {e:#}")))?;
        cache.insert(key, m.clone());
        Ok(m)
    }

    /// Loads, checks the ABI and instantiates the plugin at `spec.path`.
    pub fn open(&self, name: &str, spec: &PluginSpec) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(&spec.path).map_err(|e| {
            PluginError::Unusable(format!("cannot read {}: {e}", spec.path.display()))
        })?;
        self.open_bytes(name, &bytes, spec)
    }

    pub fn open_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        spec: &PluginSpec,
    ) -> Result<Plugin, PluginError> {
        let _busy = self.ticker.busy();
        let module = self.module(bytes)?;
        let plugin = Plugin {
            name: name.to_string(),
            engine: self.engine.clone(),
            ticker: self.ticker.clone(),
            module,
            timeout: Duration::from_millis(spec.timeout_ms.max(1)),
            memory: (spec.memory_mib as usize) << 20,
            config: spec.config.as_ref().map(|c| c.to_string()),
            hooks: 0,
            instance: Mutex::new(None),
            request: Mutex::default(),
        };
        let mut inst = plugin.instantiate()?;
        let abi = inst.call_u32(&plugin, "dm_abi_version")?;
        if abi != sdk::ABI_VERSION {
            return Err(PluginError::Unusable(format!(
                "built for plugin ABI {abi}, this dm speaks ABI {}: rebuild it against dm-plugin-sdk {}",
                sdk::ABI_VERSION,
                env!("CARGO_PKG_VERSION")
            )));
        }
        let hooks = inst.call_u32(&plugin, "dm_hooks")?;
        *plugin.instance.lock().unwrap() = Some(inst);
        Ok(Plugin { hooks, ..plugin })
    }
}

impl PluginHost for WasmHost {
    fn load(
        &self,
        name: &str,
        spec: &PluginSpec,
        bytes: &[u8],
    ) -> Result<LoadedPlugin, PluginError> {
        let plugin = self.open_bytes(name, bytes, spec)?;
        // A policy gets an instance of its own: it is called from the coordinator.
        let shard_ddl_policy = if plugin.has(sdk::HOOK_SHARD_DDL_POLICY) {
            Some(Arc::new(self.open_bytes(name, bytes, spec)?) as Arc<dyn ShardDdlPolicy>)
        } else {
            None
        };
        let table_router = if plugin.has(sdk::HOOK_TABLE_ROUTER) {
            Some(Arc::new(self.open_bytes(name, bytes, spec)?) as Arc<dyn TableRouter>)
        } else {
            None
        };
        let row_filter = plugin
            .has(sdk::HOOK_ROW_FILTER)
            .then(|| Reloading::new(self, name, spec, plugin) as Arc<dyn RowFilter>);
        Ok(LoadedPlugin {
            row_filter,
            table_router,
            shard_ddl_policy,
        })
    }
}

struct Limits {
    limits: StoreLimits,
}

/// A hook's export: `(ptr, len)` of a request in, `ptr << 32 | len` of an answer out.
type HookFn = TypedFunc<(u32, u32), u64>;

/// A live instance of a plugin.
struct Live {
    store: Store<Limits>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<(u32, u32), ()>,
    /// Hook functions looked up so far, by export name (a few: a list is quicker to search
    /// than a hash map is to hash).
    hooks: Vec<(&'static str, HookFn)>,
}

impl Live {
    fn call_u32(&mut self, p: &Plugin, export: &str) -> Result<u32, PluginError> {
        let f = self
            .instance
            .get_typed_func::<(), u32>(&mut self.store, export)
            .map_err(|_| {
                PluginError::Unusable(format!(
                    "does not export `{export}`: is it built with dm-plugin-sdk?"
                ))
            })?;
        self.store.set_epoch_deadline(p.ticks());
        f.call(&mut self.store, ()).map_err(|e| p.explain(e))
    }
}

pub struct Plugin {
    pub name: String,
    engine: Engine,
    ticker: Arc<Ticker>,
    module: Module,
    timeout: Duration,
    memory: usize,
    /// The task file's `config:` as JSON text, handed to every new instance.
    config: Option<String>,
    /// Hook bits the plugin exports (`sdk::HOOK_*`).
    pub hooks: u32,
    instance: Mutex<Option<Live>>,
    /// The request of the latest row filter call, reused.
    request: Mutex<Vec<u8>>,
}

impl Plugin {
    pub fn has(&self, hook: u32) -> bool {
        self.hooks & hook != 0
    }

    fn ticks(&self) -> u64 {
        (self.timeout.as_millis() / TICK.as_millis()) as u64 + 1
    }

    fn instantiate(&self) -> Result<Live, PluginError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory)
            .memories(1)
            .tables(1)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, Limits { limits });
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.ticks());
        let linker: Linker<Limits> = Linker::new(&self.engine);
        let instance = linker.instantiate(&mut store, &self.module).map_err(|e| {
            PluginError::Unusable(format!(
                "cannot start it: {e:#} (plugins may not import anything)"
            ))
        })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| PluginError::Unusable("exports no memory".into()))?;
        let alloc = instance
            .get_typed_func(&mut store, "dm_alloc")
            .map_err(|_| {
                PluginError::Unusable(
                    "does not export `dm_alloc`: is it built with dm-plugin-sdk?".into(),
                )
            })?;
        let free = instance
            .get_typed_func(&mut store, "dm_free")
            .map_err(|_| {
                PluginError::Unusable(
                    "does not export `dm_free`: is it built with dm-plugin-sdk?".into(),
                )
            })?;
        let mut live = Live {
            store,
            instance,
            memory,
            alloc,
            free,
            hooks: Vec::new(),
        };
        if let Some(config) = &self.config {
            let request = sdk::encode(config);
            let accepted: Result<(), String> = self.call_on(
                &mut live,
                "dm_init",
                &request,
                "an answer to dm_init",
                sdk::decode,
            )?;
            accepted.map_err(|e| PluginError::Unusable(format!("refused its config: {e}")))?;
        }
        Ok(live)
    }

    /// What went wrong in a call, for people.
    fn explain(&self, e: wasmtime::Error) -> PluginError {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout {
                ms: self.timeout.as_millis() as u64,
            },
            Some(Trap::UnreachableCodeReached) => {
                PluginError::Trapped("the plugin panicked (unreachable)".into())
            }
            Some(t) => PluginError::Trapped(t.to_string()),
            None if format!("{e:#}").contains("memory") => PluginError::OutOfMemory {
                mib: (self.memory >> 20) as u64,
                detail: format!("{e:#}"),
            },
            None => PluginError::Trapped(format!("failed: {e:#}")),
        }
    }

    /// Calls `export(ptr, len)` with `request` in guest memory and decodes the answer where
    /// it lies (an answer that is not a `T` is refused, naming `what` it should be).
    /// A failed instance is dropped: the next call gets a fresh one.
    pub fn call<T: serde::de::DeserializeOwned>(
        &self,
        export: &'static str,
        request: &[u8],
        what: &str,
    ) -> Result<T, PluginError> {
        self.call_with(export, request, what, sdk::decode)
    }

    /// `call` with the answer's bytes read by `decode`.
    fn call_with<T>(
        &self,
        export: &'static str,
        request: &[u8],
        what: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, PluginError> {
        let _busy = self.ticker.busy();
        let mut slot = self.instance.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = match slot.take() {
            Some(l) => l,
            None => self.instantiate()?,
        };
        let answer = self.call_on(&mut live, export, request, what, decode)?;
        *slot = Some(live);
        Ok(answer)
    }

    fn call_on<T>(
        &self,
        live: &mut Live,
        export: &'static str,
        request: &[u8],
        what: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, PluginError> {
        let found = live.hooks.iter().position(|(name, _)| *name == export);
        let at = match found {
            Some(at) => at,
            None => {
                let f: HookFn = live
                    .instance
                    .get_typed_func(&mut live.store, export)
                    .map_err(|_| PluginError::Unusable(format!("does not export `{export}`")))?;
                live.hooks.push((export, f));
                live.hooks.len() - 1
            }
        };
        // Borrowed, not cloned: a clone of a typed function costs more than the lookup.
        let Live {
            store,
            memory,
            alloc,
            free,
            hooks,
            ..
        } = live;
        let f = &hooks[at].1;
        let len = u32::try_from(request.len())
            .map_err(|_| PluginError::BadAnswer("request too large".into()))?;
        store.set_epoch_deadline(self.ticks());
        let ptr = alloc.call(&mut *store, len).map_err(|e| self.explain(e))?;
        memory
            .write(&mut *store, ptr as usize, request)
            .map_err(|e| PluginError::BadAnswer(format!("bad allocation: {e}")))?;
        let r = f
            .call(&mut *store, (ptr, len))
            .map_err(|e| self.explain(e))?;
        let (p, l) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        let answer = memory
            .data(&*store)
            .get(p..p.saturating_add(l))
            .ok_or_else(|| PluginError::BadAnswer(format!("answered out of its memory ({p}+{l})")))
            .and_then(|bytes| {
                decode(bytes).map_err(|e| {
                    PluginError::BadAnswer(format!("answered something that is not {what}: {e}"))
                })
            })?;
        free.call(&mut *store, (p as u32, l as u32))
            .map_err(|e| self.explain(e))?;
        Ok(answer)
    }
}

impl RowFilter for Plugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self, table: &Table, rows: &[HookRow]) -> Result<Vec<RowVerdict>, PluginError> {
        // One request buffer for every call: a new one of a kilobyte or more made glibc
        // consolidate its free lists each time.
        let mut request = self.request.lock().unwrap_or_else(|p| p.into_inner());
        convert::encode_batch(table, rows, &mut request);
        let answer =
            self.call_with("dm_row_filter", &request, "verdicts", convert::Answer::read)?;
        // A full-phase batch of wide rows may have needed megabytes: not kept for good.
        if request.capacity() > MAX_KEPT_REQUEST {
            *request = Vec::new();
        }
        answer.verdicts(table)
    }
}

impl ShardDdlPolicy for Plugin {
    fn name(&self) -> &str {
        &self.name
    }

    /// A failing policy stops the lock (a conflict naming the plugin), never guesses.
    fn decide(&self, l: &LockView<'_>) -> Decision {
        let pair = |s: &ShardId| (s.source.clone(), s.table.clone());
        let shard = |(source, table): (String, String)| ShardId { source, table };
        let info = sdk::LockInfo {
            task: l.task.to_string(),
            target: l.target.to_string(),
            shards: l.shards.iter().map(pair).collect(),
            pending: l
                .pending
                .iter()
                .map(|p| sdk::ShardDdl {
                    source: p.shard.source.clone(),
                    table: p.shard.table.clone(),
                    ddls: p.ddls.clone(),
                })
                .collect(),
            executed: l.executed.to_vec(),
        };
        let answer: Result<sdk::Decision, _> =
            self.call("dm_shard_ddl", &sdk::encode(&info), "a decision");
        match answer {
            Ok(sdk::Decision::Wait) => Decision::Wait,
            Ok(sdk::Decision::Exec { ddls, release }) => Decision::Exec {
                ddls,
                release: release.into_iter().map(shard).collect(),
            },
            Ok(sdk::Decision::Skip { release }) => Decision::Skip {
                release: release.into_iter().map(shard).collect(),
            },
            Ok(sdk::Decision::Conflict { shards, message }) => Decision::Conflict {
                shards: shards.into_iter().map(shard).collect(),
                message: format!("policy `{}`: {message}", self.name),
            },
            Err(e) => Decision::Conflict {
                shards: l.pending.iter().map(|p| p.shard.clone()).collect(),
                message: format!("policy plugin `{}` failed: {e}", self.name),
            },
        }
    }
}

impl TableRouter for Plugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn route(&self, t: &TableName) -> Result<Option<TableName>, PluginError> {
        let req = sdk::TableRef {
            schema: t.schema.clone(),
            table: t.table.clone(),
        };
        let to: sdk::TableRef = self.call("dm_route", &sdk::encode(&req), "a table")?;
        if let Some(why) = unfit_target(&to.schema, &to.table) {
            return Err(PluginError::BadAnswer(format!(
                "routed {t} to `{}`.`{}`: {why}",
                to.schema.escape_debug(),
                to.table.escape_debug()
            )));
        }
        let to = TableName::new(to.schema, to.table);
        Ok((to != *t).then_some(to))
    }
}

/// Why a router plugin's answer cannot be a target table: names MySQL would refuse, or a
/// server schema (a plugin must not have rows written into `mysql.user`).
fn unfit_target(schema: &str, table: &str) -> Option<&'static str> {
    const SYSTEM: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];
    if schema.is_empty() || table.is_empty() {
        return Some("an empty name");
    }
    if [schema, table]
        .iter()
        .any(|n| n.chars().count() > 64 || n.contains('\0'))
    {
        return Some("a name longer than 64 characters or holding NUL");
    }
    if SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(schema)) {
        return Some("a server schema");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::unfit_target;

    #[test]
    fn router_answers_into_server_schemas_or_bad_names_are_refused() {
        assert_eq!(unfit_target("shop", "orders_all"), None);
        for (s, t) in [
            ("mysql", "user"),
            ("MySQL", "db"),
            ("information_schema", "t"),
            ("performance_schema", "t"),
            ("sys", "t"),
            ("", "t"),
            ("shop", ""),
            ("shop", "a\0b"),
        ] {
            assert!(unfit_target(s, t).is_some(), "{s}.{t}");
        }
        assert!(unfit_target("shop", &"x".repeat(65)).is_some());
        assert_eq!(unfit_target("shop", &"é".repeat(64)), None);
    }
}
