//! Causality between row changes, for parallel apply.
//!
//! Every change yields keys: a hash of each unique key's values in its old and new image (the
//! identity first), or one key for the whole table when it has no identity (then no other
//! key can be trusted to find the row). Changes sharing a key go to the same apply worker, so
//! they run in binlog order. A change whose keys are owned by two workers waits until all
//! workers have applied what they hold; then the map starts empty.
//!
//! Keys may collide more than the target's unique indexes do, never less: a collision only
//! costs parallelism. Collated text is folded (case, accents, expansions, trailing spaces;
//! see `fold`) and every value that does not fold to ASCII hashes the same, since a collation
//! may call such values equal.

use super::plan::TablePlan;
use crate::datum::Datum;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A form that every value a case- and accent-insensitive collation calls equal shares (and
/// more): compatibility decomposition without combining marks, a few letters that collations
/// expand (ß, æ, œ, ...), lower case, no trailing spaces, runs of one letter collapsed (so
/// `ß`, `ss` and `s` meet). `None` when something other than ASCII is left: such values all
/// share one key.
fn fold(b: &[u8]) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let text = std::str::from_utf8(b).ok()?;
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        let piece: &str = match c {
            '\u{300}'..='\u{36f}' => continue,
            'ß' | 'ẞ' => "ss",
            'æ' | 'Æ' => "ae",
            'œ' | 'Œ' => "oe",
            'ø' | 'Ø' => "o",
            'đ' | 'Đ' | 'ð' | 'Ð' => "d",
            'ł' | 'Ł' => "l",
            'þ' | 'Þ' => "th",
            c if c.is_ascii() => {
                let l = c.to_ascii_lowercase();
                if out.ends_with(l) && l.is_ascii_alphabetic() {
                    continue;
                }
                out.push(l);
                continue;
            }
            _ => return None,
        };
        for l in piece.chars() {
            if !out.ends_with(l) {
                out.push(l);
            }
        }
    }
    Some(out.trim_end_matches(' ').to_string())
}

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
        Datum::Bytes(b) if collated => match fold(b) {
            Some(folded) => {
                h.write(folded.as_bytes());
                h.write_u8(0);
            }
            None => h.write_u8(0xff),
        },
        Datum::Bytes(b) => b.hash(h),
    }
    true
}

/// Appends the causality keys of one row image. Of a key with a prefix column, string
/// values are left out: values that differ only after the prefix collide in the index.
fn image_keys(plan: &TablePlan, row: &[Datum], out: &mut Vec<u64>) {
    for (n, cols) in plan.unique_keys.iter().enumerate() {
        let mut h = DefaultHasher::new();
        h.write_u64(plan.name_hash);
        h.write_usize(n);
        let complete = cols.iter().all(|&i| match &row[i] {
            Datum::Bytes(_) if plan.prefixed[n] => true,
            v => hash_value(v, plan.collated[i], &mut h),
        });
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
    use crate::table::{Column, Table, TableName};

    fn plan() -> TablePlan {
        let col = |n: &str, t: &str, nullable| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable,
            generated: false,
            members: vec![],
        };
        TablePlan::new(
            Table {
                name: TableName::new("d", "t"),
                columns: vec![col("id", "int", false), col("u", "varchar", true)],
                primary_key: vec!["id".into()],
                unique_keys: vec![("u".into(), vec!["u".into()])],
                prefixed_keys: vec![],
            },
            None,
        )
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
        let d = keys(&p, None, Some(&r(4, Some("e"))));
        assert!(c.iter().any(|k| d.contains(k)), "accents fold");
        let s1 = keys(&p, None, Some(&r(5, Some("Straße"))));
        let s2 = keys(&p, None, Some(&r(6, Some("strase"))));
        let s3 = keys(&p, None, Some(&r(7, Some("STRASSE"))));
        assert!(
            s1.iter().any(|k| s2.contains(k) && s3.contains(k)),
            "ß meets s and ss"
        );
        let x = keys(&p, None, Some(&r(8, Some("日本"))));
        let y = keys(&p, None, Some(&r(9, Some("中国"))));
        assert!(
            x.iter().any(|k| y.contains(k)),
            "other scripts share one key"
        );
        assert_eq!(keys(&p, None, Some(&r(10, None))).len(), 1);
    }

    #[test]
    fn prefix_keys_collide_beyond_the_prefix() {
        let mut t = plan().table.clone();
        t.prefixed_keys.push("u".into());
        let p = TablePlan::new(t, None);
        let a = keys(
            &p,
            None,
            Some(&[Datum::Int(1), Datum::Bytes(b"abcX".to_vec())]),
        );
        let b = keys(
            &p,
            None,
            Some(&[Datum::Int(2), Datum::Bytes(b"abcY".to_vec())]),
        );
        assert!(a.iter().any(|k| b.contains(k)));
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
