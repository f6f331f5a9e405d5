//! Table router: the shards `orders_<n>` of a schema merge into one `orders` table; every
//! other table keeps its name.
use dm_plugin_sdk::*;
use regex_lite::Regex;
use std::sync::OnceLock;

#[table_router]
fn route(t: &TableRef) -> TableRef {
    static SHARD: OnceLock<Regex> = OnceLock::new();
    let shard = SHARD.get_or_init(|| Regex::new(r"^orders_\d+$").unwrap());
    if shard.is_match(&t.table) {
        TableRef {
            schema: t.schema.clone(),
            table: "orders".into(),
        }
    } else {
        t.clone()
    }
}
