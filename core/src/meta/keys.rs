//! Key names of the metadata store (layout in the module doc of `meta`).

pub const SOURCE: &str = "/dm/source/";
pub const BOUND: &str = "/dm/bound/";
pub const TASK: &str = "/dm/task/";
pub const STAGE: &str = "/dm/stage/";
pub const STATUS: &str = "/dm/status/";

pub fn source(id: &str) -> String {
    format!("{SOURCE}{id}")
}
pub fn bound(source_id: &str) -> String {
    format!("{BOUND}{source_id}")
}
pub fn task(name: &str) -> String {
    format!("{TASK}{name}")
}
pub fn stage(task: &str) -> String {
    format!("{STAGE}{task}")
}
pub fn status(task: &str, source_id: &str) -> String {
    format!("{STATUS}{task}/{source_id}")
}
pub fn status_prefix(task: &str) -> String {
    format!("{STATUS}{task}/")
}
