//! dm plugin SDK: wire types shared by the host and WASM guests (ABI to come with the plugin issue).
/// ABI version a plugin built with this SDK speaks.
pub const ABI_VERSION: u32 = 0;
