//! A plugin built for another ABI version.
#[no_mangle]
pub extern "C" fn dm_abi_version() -> u32 {
    999
}
#[no_mangle]
pub extern "C" fn dm_hooks() -> u32 {
    dm_plugin_sdk::HOOK_ROW_FILTER
}
#[no_mangle]
pub extern "C" fn dm_alloc(len: u32) -> u32 {
    dm_plugin_sdk::guest::alloc(len)
}
#[no_mangle]
pub unsafe extern "C" fn dm_free(ptr: u32, len: u32) {
    dm_plugin_sdk::guest::free(ptr, len)
}
