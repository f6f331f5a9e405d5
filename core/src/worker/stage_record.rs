//! A desired stage as the metadata store holds it, including the form earlier versions of dm
//! wrote (binlog operators as three lists keyed by position text), so that a skip or
//! replacement recorded before an upgrade still happens after it.

use super::DesiredStage;
use crate::position::BinlogPos;
use crate::status::Stage;
use crate::sync::{record_operator, BinlogAction, BinlogOperator};
use crate::throttle::ThrottleSetting;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize)]
pub(super) struct StageRecord {
    stage: Stage,
    generation: u64,
    #[serde(default)]
    operators: BTreeMap<String, Vec<BinlogOperator>>,
    #[serde(default)]
    paused_sources: BTreeSet<String>,
    #[serde(default)]
    source_generations: BTreeMap<String, u64>,
    #[serde(default)]
    throttle: ThrottleSetting,
    #[serde(default)]
    resync: Vec<super::ResyncOrder>,
    /// Earlier versions: per source, `file:pos` of transactions to skip.
    #[serde(default)]
    skip: BTreeMap<String, Vec<String>>,
    /// Earlier versions: per source, (`file:pos`, statements) to run instead.
    #[serde(default)]
    replace: BTreeMap<String, Vec<(String, Vec<String>)>>,
    /// Earlier versions: per source, (`file:pos`, statements) to run before.
    #[serde(default)]
    inject: BTreeMap<String, Vec<(String, Vec<String>)>>,
}

impl From<StageRecord> for DesiredStage {
    fn from(r: StageRecord) -> Self {
        let mut operators = r.operators;
        // Earlier versions applied a skip before a replacement before an injection at the
        // same position: recorded in the other order, the first one wins as it did.
        let legacy = r
            .inject
            .into_iter()
            .flat_map(|(s, ops)| {
                ops.into_iter()
                    .map(move |(p, sql)| (s.clone(), p, BinlogAction::Inject { sql }))
            })
            .chain(r.replace.into_iter().flat_map(|(s, ops)| {
                ops.into_iter()
                    .map(move |(p, sql)| (s.clone(), p, BinlogAction::Replace { sql }))
            }))
            .chain(r.skip.into_iter().flat_map(|(s, ps)| {
                ps.into_iter()
                    .map(move |p| (s.clone(), p, BinlogAction::Skip))
            }));
        for (source, position, action) in legacy {
            match BinlogPos::parse(&position) {
                Some(at) => record_operator(operators.entry(source).or_default(), at, action),
                None => {
                    tracing::warn!(%source, %position, action = action.name(), "a binlog operator recorded at something that is not a binlog position is left out")
                }
            }
        }
        DesiredStage {
            stage: r.stage,
            generation: r.generation,
            operators,
            paused_sources: r.paused_sources,
            source_generations: r.source_generations,
            throttle: r.throttle,
            resync: r.resync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_written_by_an_earlier_version_keeps_its_operators() {
        let old = r#"{"stage":"running","generation":4,
            "skip":{"s1":["mysql-bin.000002:900"]},
            "replace":{"s1":[["mysql-bin.000002:900",["DELETE FROM t"]],["mysql-bin.000003:4",["INSERT INTO t VALUES (1)"]]]},
            "inject":{"s2":[["mysql-bin.000001:120",["SET @a = 1"]]]},
            "paused_sources":["s2"]}"#;
        let d: DesiredStage = serde_json::from_str(old).unwrap();
        let at = |t: &str| BinlogPos::parse(t).unwrap();
        let s1 = d.operators_of("s1");
        assert_eq!(s1.len(), 2);
        // The skip won over the replacement at the same position, as it did.
        assert!(s1.contains(&BinlogOperator {
            at: at("mysql-bin.000002:900"),
            action: BinlogAction::Skip
        }));
        assert!(s1.contains(&BinlogOperator {
            at: at("mysql-bin.000003:4"),
            action: BinlogAction::Replace {
                sql: vec!["INSERT INTO t VALUES (1)".into()]
            }
        }));
        assert_eq!(
            d.operators_of("s2"),
            vec![BinlogOperator {
                at: at("mysql-bin.000001:120"),
                action: BinlogAction::Inject {
                    sql: vec!["SET @a = 1".into()]
                }
            }]
        );
        assert!(d.paused_sources.contains("s2"));
        // Written again, it is in today's form and reads back the same.
        let again: DesiredStage =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(again, d);
        assert!(!serde_json::to_string(&d).unwrap().contains("\"skip\":"));
    }
}
