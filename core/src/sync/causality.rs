//! Causality between row changes, for parallel apply.
//!
//! Every change yields keys: a hash of each unique key's values in its old and new image (the
//! identity first), or one key for the whole table when it has no identity (then no other
//! key can be trusted to find the row). Changes sharing a key go to the same apply worker, so
//! they run in binlog order. A change whose keys are owned by two workers waits until all
//! workers have applied what they hold; then the map starts empty.
//!
//! Keys may collide more than the target's unique indexes do, never less: a collision only
//! costs parallelism. Collated text is folded (ASCII case, trailing spaces) and every text
//! value with other bytes hashes the same, since a collation may call such values equal.

use super::plan::TablePlan;
use crate::db::Datum;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Hashes one value as the target's unique index compares it. False for NULL, which never
/// conflicts in a unique index.
fn hash_value(d: &Datum, collated: bool, h: &mut DefaultHasher) -> bool {
    match d {
        Datum::Null => return false,
        Datum::Int(v) => v.hash(h),
        Datum::UInt(v) => v.hash(h),
        // -0.0 == 0.0
        Datum::Float(v) => (v + 0.0).to_bits().hash(h),
        Datum::Double(v) => (v + 0.0).to_bits().hash(h),
        Datum::Decimal(s) | Datum::Temporal(s) => s.hash(h),
        Datum::Bytes(b) if collated => {
            let trimmed = b.trim_ascii_end();
            if trimmed.iter().all(|c| (0x20..0x7f).contains(c)) {
                for c in trimmed {
                    h.write_u8(c.to_ascii_lowercase());
                }
                h.write_u8(0);
            } else {
                h.write_u8(0xff);
            }
        }
        Datum::Bytes(b) => b.hash(h),
    }
    true
}

/// Appends the causality keys of one row image.
fn image_keys(plan: &TablePlan, row: &[Datum], out: &mut Vec<u64>) {
    for (n, cols) in plan.unique_keys.iter().enumerate() {
        let mut h = DefaultHasher::new();
        h.write_u64(plan.name_hash);
        h.write_usize(n);
        let complete = cols
            .iter()
            .all(|&i| hash_value(&row[i], plan.collated[i], &mut h));
        if complete {
            out.push(h.finish());
        }
    }
}

/// The causality keys of a change, into `out` (cleared first).
pub fn change_keys(
    plan: &TablePlan,
    before: Option<&[Datum]>,
    after: Option<&[Datum]>,
    out: &mut Vec<u64>,
) {
    out.clear();
    if plan.identity.is_none() {
        out.push(plan.name_hash);
        return;
    }
    for row in [before, after].into_iter().flatten() {
        image_keys(plan, row, out);
    }
    out.sort_unstable();
    out.dedup();
}

/// Which worker owns which key since the last flush.
pub struct Causality {
    owner: HashMap<u64, usize>,
    workers: usize,
}

impl Causality {
    pub fn new(workers: usize) -> Self {
        Causality {
            owner: HashMap::new(),
            workers: workers.max(1),
        }
    }

    /// The worker for a change with `keys`, or `None` when its keys belong to different
    /// workers: then flush, `reset` and ask again.
    pub fn route(&mut self, keys: &[u64]) -> Option<usize> {
        let mut chosen = None;
        for k in keys {
            if let Some(&w) = self.owner.get(k) {
                match chosen {
                    Some(c) if c != w => return None,
                    _ => chosen = Some(w),
                }
            }
        }
        let w = chosen.unwrap_or_else(|| {
            keys.first()
                .map_or(0, |k| (*k % self.workers as u64) as usize)
        });
        for k in keys {
            self.owner.insert(*k, w);
        }
        Some(w)
    }

    pub fn reset(&mut self) {
        self.owner.clear();
    }

    pub fn len(&self) -> usize {
        self.owner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Table, TableName};

    fn plan() -> TablePlan {
        let col = |n: &str, t: &str, nullable| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable,
            generated: false,
        };
        TablePlan::new(Table {
            name: TableName::new("d", "t"),
            columns: vec![col("id", "int", false), col("u", "varchar", true)],
            primary_key: vec!["id".into()],
            unique_keys: vec![("u".into(), vec!["u".into()])],
        })
    }

    fn keys(p: &TablePlan, b: Option<&[Datum]>, a: Option<&[Datum]>) -> Vec<u64> {
        let mut out = vec![];
        change_keys(p, b, a, &mut out);
        out
    }

    #[test]
    fn collated_text_folds_and_null_never_conflicts() {
        let p = plan();
        let r = |id, u: Option<&str>| {
            vec![
                Datum::Int(id),
                u.map_or(Datum::Null, |s| Datum::Bytes(s.as_bytes().to_vec())),
            ]
        };
        let a = keys(&p, None, Some(&r(1, Some("Abc "))));
        let b = keys(&p, None, Some(&r(2, Some("aBC"))));
        assert_eq!(a.len(), 2);
        assert!(
            a.iter().any(|k| b.contains(k)),
            "case and trailing spaces fold"
        );
        let c = keys(&p, None, Some(&r(3, Some("é"))));
        let d = keys(&p, None, Some(&r(4, Some("e\u{301}"))));
        assert!(c.iter().any(|k| d.contains(k)), "non-ASCII text is one key");
        assert_eq!(keys(&p, None, Some(&r(5, None))).len(), 1);
    }

    #[test]
    fn linked_keys_conflict() {
        let mut c = Causality::new(2);
        let w1 = c.route(&[10]).unwrap();
        let w2 = c.route(&[11]).unwrap();
        assert_ne!(w1, w2);
        assert_eq!(c.route(&[10, 12]), Some(w1));
        assert_eq!(c.route(&[12, 11]), None);
        c.reset();
        assert!(c.route(&[12, 11]).is_some());
    }
}
