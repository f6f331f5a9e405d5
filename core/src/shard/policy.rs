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
        let verdicts: Vec<Change> = ddls.iter().map(|d| classify(d, l.target_columns)).collect();
        if let Some(Change::Incompatible(why)) = verdicts
            .iter()
            .find(|c| matches!(c, Change::Incompatible(_)))
        {
            return Decision::Conflict {
                shards: release,
                message: format!("{}: {why}", show(p)),
            };
        }
        // A statement that adds and drops (split into one statement per change): its
        // additions run now, its drops wait for the other shards, as if sent one by one.
        let (adds, drops): (Vec<_>, Vec<_>) = ddls
            .into_iter()
            .zip(verdicts)
            .partition(|(_, c)| *c == Change::Additive);
        let adds: Vec<String> = adds.into_iter().map(|(d, _)| d).collect();
        let drops: Vec<String> = drops.into_iter().map(|(d, _)| d).collect();
        if drops.is_empty() {
            Decision::Exec {
                ddls: adds,
                release,
            }
        } else if adds.is_empty() || l.executed.contains(&adds) {
            Decision::Defer {
                ddls: drops,
                release,
            }
        } else {
            Decision::Exec {
                ddls: adds,
                release: vec![],
            }
        }
    }
}

/// Classifies an ALTER TABLE as the target would run it; `columns` are the target table's
/// (name, type), to tell a widened type from a narrowed one.
pub fn classify(sql: &str, columns: &[(String, String)]) -> Change {
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
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            ..
        } => retype(&col_name.value, &data_type.to_string(), columns),
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            ..
        } if old_name.value.eq_ignore_ascii_case(&new_name.value) => {
            retype(&old_name.value, &data_type.to_string(), columns)
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

/// A column's type change: compatible when every value of the old type fits the new one.
fn retype(column: &str, new: &str, columns: &[(String, String)]) -> Change {
    let Some((_, old)) = columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(column)) else {
        return Change::Incompatible(format!("the target has no column `{column}`"));
    };
    if widens(old, &new.to_lowercase()) {
        Change::Additive
    } else {
        Change::Incompatible(format!(
            "`{column}` goes from {old} to {}, which does not hold every value the other shards may still write; widen it instead, or resolve the lock by hand",
            new.to_lowercase()
        ))
    }
}

/// (base type, numbers in parentheses, unsigned) of a type such as `decimal(10,2) unsigned`.
fn parse_type(t: &str) -> (String, Vec<u32>, bool) {
    let base: String = t.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let args = t
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(a, _)| a.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    (base, args, t.contains("unsigned"))
}

/// Whether every value of type `old` is a value of type `new` (MySQL type names).
pub fn widens(old: &str, new: &str) -> bool {
    let (ob, oa, ou) = parse_type(old);
    let (nb, na, nu) = parse_type(new);
    let rank = |b: &str, family: &[&[&str]]| {
        family
            .iter()
            .position(|names| names.contains(&b))
            .map(|r| r as i32)
    };
    const INTS: &[&[&str]] = &[
        &["tinyint"],
        &["smallint"],
        &["mediumint"],
        &["int", "integer"],
        &["bigint"],
    ];
    const TEXTS: &[&[&str]] = &[&["tinytext"], &["text"], &["mediumtext"], &["longtext"]];
    const BLOBS: &[&[&str]] = &[&["tinyblob"], &["blob"], &["mediumblob"], &["longblob"]];
    for family in [INTS, TEXTS, BLOBS] {
        if let (Some(o), Some(n)) = (rank(&ob, family), rank(&nb, family)) {
            return n >= o && ou == nu;
        }
    }
    match (ob.as_str(), nb.as_str()) {
        ("char" | "varchar", "varchar")
        | ("char", "char")
        | ("varbinary" | "binary", "varbinary") => {
            na.first().unwrap_or(&1) >= oa.first().unwrap_or(&1)
        }
        ("decimal" | "numeric", "decimal" | "numeric") => {
            let (op, os) = (*oa.first().unwrap_or(&10), *oa.get(1).unwrap_or(&0));
            let (np, ns) = (*na.first().unwrap_or(&10), *na.get(1).unwrap_or(&0));
            ns >= os && np - ns >= op - os && ou == nu
        }
        ("float", "double" | "float") => ou == nu,
        _ => old == new,
    }
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
                target_columns: &[],
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
    fn widening_is_told_from_narrowing() {
        assert!(widens("int(11)", "bigint"));
        assert!(!widens("bigint(20)", "int"));
        assert!(!widens("int(10) unsigned", "bigint"));
        assert!(widens("varchar(20)", "varchar(30)"));
        assert!(!widens("varchar(30)", "varchar(20)"));
        assert!(widens("decimal(10,2)", "decimal(12,3)"));
        assert!(!widens("decimal(10,2)", "decimal(10,3)"));
        assert!(widens("text", "longtext"));
        let cols = [("v".to_string(), "int(11)".to_string())];
        assert_eq!(
            classify("ALTER TABLE t MODIFY v BIGINT NOT NULL", &cols),
            Change::Additive
        );
        assert!(matches!(
            classify("ALTER TABLE t MODIFY v SMALLINT", &cols),
            Change::Incompatible(_)
        ));
    }

    #[test]
    fn optimistic_classifies_changes() {
        assert_eq!(
            classify("ALTER TABLE t ADD COLUMN c INT", &[]),
            Change::Additive
        );
        assert_eq!(
            classify("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0", &[]),
            Change::Additive
        );
        assert_eq!(
            classify("ALTER TABLE t ADD INDEX i (c)", &[]),
            Change::Additive
        );
        assert_eq!(classify("ALTER TABLE t DROP COLUMN c", &[]), Change::Drop);
        assert!(matches!(
            classify("ALTER TABLE t ADD COLUMN c INT NOT NULL", &[]),
            Change::Incompatible(_)
        ));
        assert!(matches!(
            classify("ALTER TABLE t MODIFY c BIGINT", &[]),
            Change::Incompatible(_)
        ));
        assert!(matches!(
            classify("ALTER TABLE t ADD COLUMN c INT, DROP COLUMN d", &[]),
            Change::Incompatible(_)
        ));
    }

    /// `ADD COLUMN c4, DROP COLUMN c3` (sent split, one statement per change): the addition
    /// runs at once, the drop waits for every shard, as if the shard had sent them apart.
    #[test]
    fn optimistic_runs_the_additions_of_a_mixed_statement_and_defers_its_drops() {
        let (a, b) = (shard("s1", "d.t1"), shard("s1", "d.t2"));
        let shards = [a.clone(), b.clone()];
        let (add, drop) = (
            "ALTER TABLE `x`.`t` ADD COLUMN c4 INT".to_string(),
            "ALTER TABLE `x`.`t` DROP COLUMN c3".to_string(),
        );
        let mixed = |s: &ShardId| PendingDdl {
            shard: s.clone(),
            ddls: vec![add.clone(), drop.clone()],
            position: "mysql-bin.000001:4".into(),
        };
        let decide = |p: &[PendingDdl], executed: &[Vec<String>]| {
            Optimistic.decide(&LockView {
                task: "t",
                target: "x.t",
                shards: &shards,
                pending: p,
                executed,
                deferred: &[],
                target_columns: &[],
            })
        };
        assert_eq!(
            decide(&[mixed(&a)], &[]),
            Decision::Exec {
                ddls: vec![add.clone()],
                release: vec![]
            }
        );
        let done = [vec![add.clone()]];
        for s in [&a, &b] {
            assert_eq!(
                decide(&[mixed(s)], &done),
                Decision::Defer {
                    ddls: vec![drop.clone()],
                    release: vec![s.clone()]
                }
            );
        }
    }
}
