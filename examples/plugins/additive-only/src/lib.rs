//! Shard DDL policy: only additive changes (ADD COLUMN, ADD INDEX) reach the merged table,
//! each as soon as the first shard sends it; anything else stops the shard for a person.
use dm_plugin_sdk::*;

fn additive(ddl: &str) -> bool {
    let upper = ddl.to_uppercase();
    let adds = upper.contains(" ADD ");
    let changes = ["DROP", "MODIFY", "CHANGE", "RENAME", "NOT NULL"]
        .iter()
        .any(|w| upper.contains(w))
        && !upper.contains("DEFAULT");
    adds && !changes
}

#[shard_ddl_policy]
fn decide(lock: &LockInfo) -> Decision {
    let Some(p) = lock.pending.first() else {
        return Decision::Wait;
    };
    let shard = (p.source.clone(), p.table.clone());
    if lock.executed.contains(&p.ddls) {
        return Decision::Skip {
            release: vec![shard],
        };
    }
    if p.ddls.iter().all(|d| additive(d)) {
        Decision::Exec {
            ddls: p.ddls.clone(),
            release: vec![shard],
        }
    } else {
        Decision::Conflict {
            shards: vec![shard],
            message: format!(
                "only additive changes are allowed, not `{}`",
                p.ddls.join("; ")
            ),
        }
    }
}
