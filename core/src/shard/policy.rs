//! The two native shard DDL policies, TiDB DM's `shard-mode`s.

use crate::config::ShardMode;
use crate::hooks::{Decision, LockView, PendingDdl, ShardDdlPolicy, ShardId};
use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

pub fn native(mode: ShardMode) -> Box<dyn ShardDdlPolicy> {
    match mode {
        ShardMode::Pessimistic => Box::new(Pessimistic),
        ShardMode::Optimistic => Box::new(Optimistic),
    }
}

/// Shards whose DDL already ran downstream (a late shard, or after `unlock --exec`).
fn already_done(l: &LockView<'_>) -> Vec<ShardId> {
    l.pending
        .iter()
        .filter(|p| l.executed.contains(&p.ddls))
        .map(|p| p.shard.clone())
        .collect()
}

fn show(p: &PendingDdl) -> String {
    format!("{} sent `{}`", p.shard, p.ddls.join("; "))
}

/// Every shard waits at the DDL until all shards of the table sent the same one; then it runs
/// once. Shards that sent another DDL than most stop, with a message naming who sent what.
pub struct Pessimistic;

impl ShardDdlPolicy for Pessimistic {
    fn name(&self) -> &str {
        "pessimistic"
    }

    fn decide(&self, l: &LockView<'_>) -> Decision {
        if l.pending.is_empty() {
            return Decision::Wait;
        }
        let done = already_done(l);
        if !done.is_empty() {
            return Decision::Skip { release: done };
        }
        // The DDL most shards sent (the first to arrive on a tie) is the reference.
        let count = |ddls: &Vec<String>| l.pending.iter().filter(|p| p.ddls == *ddls).count();
        let reference = l
            .pending
            .iter()
            .fold(&l.pending[0], |best, p| {
                if count(&p.ddls) > count(&best.ddls) {
                    p
                } else {
                    best
                }
            })
            .ddls
            .clone();
        let odd: Vec<&PendingDdl> = l.pending.iter().filter(|p| p.ddls != reference).collect();
        if !odd.is_empty() {
            let agreeing = l.pending.iter().find(|p| p.ddls == reference).unwrap();
            let mut lines = vec![show(agreeing)];
            lines.extend(odd.iter().map(|p| show(p)));
            return Decision::Conflict {
                shards: odd.iter().map(|p| p.shard.clone()).collect(),
                message: format!("shards sent different DDLs: {}", lines.join("; ")),
            };
        }
        let arrived = |s: &ShardId| l.pending.iter().any(|p| p.shard == *s);
        if l.shards.iter().all(arrived) {
            return Decision::Exec {
                ddls: reference,
                release: l.pending.iter().map(|p| p.shard.clone()).collect(),
            };
        }
        Decision::Wait
    }
}

/// Additive changes (a nullable or defaulted column, a non-unique index) run at the first
/// shard; drops let the shard go on at once and run when every shard dropped; anything else
/// stops the shard with an explanation.
pub struct Optimistic;

/// How a DDL changes what rows a merged table takes.
#[derive(Debug, PartialEq)]
pub enum Change {
    Additive,
    Drop,
    Incompatible(String),
}

impl ShardDdlPolicy for Optimistic {
    fn name(&self) -> &str {
        "optimistic"
    }

    fn decide(&self, l: &LockView<'_>) -> Decision {
        let done = already_done(l);
        if !done.is_empty() {
            return Decision::Skip { release: done };
        }
        for (ddls, sent) in l.deferred {
            if l.shards.iter().all(|s| sent.contains(s)) {
                return Decision::Exec {
                    ddls: ddls.clone(),
                    release: vec![],
                };
            }
        }
        let Some(p) = l.pending.first() else {
            return Decision::Wait;
        };
        let release = vec![p.shard.clone()];
        let ddls = p.ddls.clone();
        let verdicts: Vec<Change> = ddls.iter().map(|d| classify(d)).collect();
        if let Some(Change::Incompatible(why)) = verdicts
            .iter()
            .find(|c| matches!(c, Change::Incompatible(_)))
        {
            return Decision::Conflict {
                shards: release,
                message: format!("{}: {why}", show(p)),
            };
        }
        if verdicts.iter().all(|c| *c == Change::Additive) {
            Decision::Exec { ddls, release }
        } else if verdicts.iter().all(|c| *c == Change::Drop) {
            Decision::Defer { ddls, release }
        } else {
            Decision::Conflict {
                shards: release,
                message: format!(
                    "{}: mixes additions and drops in one statement; send them separately",
                    show(p)
                ),
            }
        }
    }
}

/// Classifies an ALTER TABLE as the target would run it.
pub fn classify(sql: &str) -> Change {
    let stmt = match Parser::parse_sql(&MySqlDialect {}, sql) {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        _ => return Change::Incompatible("dm cannot parse it".into()),
    };
    let Statement::AlterTable(alter) = stmt else {
        return Change::Incompatible("only ALTER TABLE is coordinated".into());
    };
    let mut kinds = alter.operations.iter().map(|op| match op {
        AlterTableOperation::AddColumn { column_def, .. } => {
            let opts = || column_def.options.iter().map(|o| &o.option);
            let not_null = opts().any(|o| matches!(o, ColumnOption::NotNull));
            let default = opts().any(|o| matches!(o, ColumnOption::Default(_)));
            if not_null && !default {
                Change::Incompatible(format!(
                    "column `{}` is NOT NULL without a default: rows of the other shards could not be written; give it a default or make it nullable",
                    column_def.name.value
                ))
            } else {
                Change::Additive
            }
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Index(_),
            ..
        } => Change::Additive,
        AlterTableOperation::DropColumn { .. } | AlterTableOperation::DropIndex { .. } => {
            Change::Drop
        }
        other => Change::Incompatible(format!(
            "`{other}` changes what the other shards' rows mean; optimistic mode runs only additions and drops (use pessimistic mode, or resolve the lock by hand)"
        )),
    });
    let first = kinds.next().unwrap_or(Change::Additive);
    kinds.fold(first, |acc, k| match (acc, k) {
        (Change::Incompatible(w), _) | (_, Change::Incompatible(w)) => Change::Incompatible(w),
        (a, b) if a == b => a,
        _ => Change::Incompatible("mixes additions and drops in one statement".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(s: &str, t: &str) -> ShardId {
        ShardId {
            source: s.into(),
            table: t.into(),
        }
    }

    fn pending(s: &ShardId, ddl: &str) -> PendingDdl {
        PendingDdl {
            shard: s.clone(),
            ddls: vec![ddl.into()],
            position: "mysql-bin.000001:4".into(),
        }
    }

    #[test]
    fn pessimistic_waits_for_every_shard_and_names_the_odd_one() {
        let (a, b, c) = (
            shard("s1", "d.t1"),
            shard("s1", "d.t2"),
            shard("s2", "d.t1"),
        );
        let shards = [a.clone(), b.clone(), c.clone()];
        let add = "ALTER TABLE `x`.`t` ADD COLUMN c INT";
        let p = [pending(&a, add), pending(&c, add)];
        let decide = |p: &[PendingDdl]| {
            Pessimistic.decide(&LockView {
                task: "t",
                target: "x.t",
                shards: &shards,
                pending: p,
                executed: &[],
                deferred: &[],
            })
        };
        assert_eq!(decide(&p), Decision::Wait);
        let p = [pending(&a, add), pending(&c, add), pending(&b, add)];
        assert!(matches!(decide(&p), Decision::Exec { release, .. } if release.len() == 3));
        let p = [
            pending(&b, "ALTER TABLE `x`.`t` ADD COLUMN d INT"),
            pending(&a, add),
            pending(&c, add),
        ];
        match decide(&p) {
            Decision::Conflict { shards, message } => {
                assert_eq!(shards, vec![b.clone()]);
                assert!(message.contains("s1:d.t2 sent"), "{message}");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn optimistic_classifies_changes() {
        assert_eq!(classify("ALTER TABLE t ADD COLUMN c INT"), Change::Additive);
        assert_eq!(
            classify("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0"),
            Change::Additive
        );
        assert_eq!(classify("ALTER TABLE t ADD INDEX i (c)"), Change::Additive);
        assert_eq!(classify("ALTER TABLE t DROP COLUMN c"), Change::Drop);
        assert!(matches!(
            classify("ALTER TABLE t ADD COLUMN c INT NOT NULL"),
            Change::Incompatible(_)
        ));
        assert!(matches!(
            classify("ALTER TABLE t MODIFY c BIGINT"),
            Change::Incompatible(_)
        ));
        assert!(matches!(
            classify("ALTER TABLE t ADD COLUMN c INT, DROP COLUMN d"),
            Change::Incompatible(_)
        ));
    }
}
