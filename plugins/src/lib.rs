//! dm plugin host: runs WASM plugins behind the hooks of `dm-core` (to come with the plugin issue).
pub use dm_plugin_sdk::ABI_VERSION;
