//! Tables linked by foreign keys (`foreign-key-checks: true`) in the incremental phase.
//!
//! The source's storage engine makes a cascade's row changes (`ON DELETE CASCADE`, `SET NULL`,
//! ...) without writing them to the binlog; they reach the target only if the target makes
//! them too, with its foreign key checks on. So the changes of linked tables:
//! - go to one more apply worker, the linked worker, whose session has the checks on, in
//!   binlog order (causality cannot order them: a cascade changes rows no event names);
//! - are never compacted (a parent inserted and deleted in one batch may have had children in
//!   between) and never written in safe mode (a REPLACE of a parent deletes its children by
//!   cascade);
//! - are applied exactly once instead: each has a place, the position of its rows event and
//!   its number among the linked changes at that position; the linked worker records the
//!   place after the last change it committed in the same transaction, and a restarted stream
//!   skips the linked changes before it.
//!
//! The full phase copies a group of linked tables in one snapshot (`FullPhase::copy_linked`),
//! so their changes after that one position apply exactly too.

use super::Dispatcher;
use crate::error::{Error, Result};
use crate::position::BinlogPos;
use crate::schema::foreign_keys::{self, Groups};
use crate::table::TableName;

/// Where a linked change is in the binlog: its rows event's end, and its number among the
/// linked changes there (a compressed transaction's events all end where its payload does).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub pos: BinlogPos,
    pub index: u64,
}

impl Place {
    /// The place after this one: what the linked worker records once it is applied.
    pub fn next(&self) -> Place {
        Place {
            pos: self.pos.clone(),
            index: self.index + 1,
        }
    }
}

/// The dispatcher's side: which tables are linked, and where the linked changes are.
#[derive(Default)]
pub struct Linked {
    /// `None` until read (again, after a schema change) from the target's foreign keys.
    groups: Option<Groups>,
    /// Linked changes before this place are in the target (recorded by an earlier run).
    applied: Option<Place>,
    /// The place of the next linked change.
    next: Option<Place>,
}

impl Linked {
    /// `applied`: the place the linked worker of an earlier run recorded.
    pub fn new(applied: Option<Place>) -> Self {
        Linked {
            applied,
            ..Linked::default()
        }
    }

    /// The tables are read again at the next change (their foreign keys may have changed).
    pub fn forget_groups(&mut self) {
        self.groups = None;
    }

    /// The place of a linked change of the rows event ending at `pos`, and whether it is in
    /// the target already.
    pub fn place(&mut self, pos: BinlogPos) -> (Place, bool) {
        let place = match self.next.take() {
            Some(p) if p.pos == pos => p,
            _ => Place { pos, index: 0 },
        };
        self.next = Some(place.next());
        let applied = self.applied.as_ref().is_some_and(|a| place < *a);
        (place, applied)
    }
}

impl Dispatcher<'_> {
    /// Whether `table` is linked by a foreign key to another table the task writes (always
    /// false without `foreign-key-checks`). The target's foreign keys decide: they are what
    /// cascades there.
    pub(super) async fn is_linked(&mut self, table: &TableName, at: &BinlogPos) -> Result<bool> {
        if !self.inc.ctx.foreign_keys {
            return Ok(false);
        }
        if self.linked.groups.is_none() {
            let fks = foreign_keys::list(&mut self.conn, None)
                .await
                .map_err(self.tgt_err())?;
            let filter = &self.inc.ctx.filter;
            let scope: std::collections::BTreeSet<TableName> = fks
                .iter()
                .flat_map(|fk| [&fk.child, &fk.parent])
                .filter(|t| filter.allows_table(&t.schema, &t.table))
                .cloned()
                .collect();
            let groups = Groups::of(&scope, &fks).map_err(|m| Error::Schema {
                table: table.to_string(),
                position: at.to_string(),
                message: format!("{m}; add the table to the task, or leave foreign-key-checks off"),
            })?;
            self.snapshots_agree(&groups, at)?;
            self.linked.groups = Some(groups);
        }
        let linked = self.linked.groups.as_ref().is_some_and(|g| g.linked(table));
        if linked && self.inc.ctx.router.route(table).is_some() {
            return Err(Error::Schema {
                table: table.to_string(),
                position: at.to_string(),
                message: "a table linked by foreign keys is routed to another table: with foreign-key-checks its changes must reach the table its foreign keys name".into(),
            });
        }
        Ok(linked)
    }
}

impl Dispatcher<'_> {
    /// Each group's tables were read at one position (until the stream passes the newest
    /// snapshot, `table_positions` says where each was read; a table without an entry was read
    /// where the stream started): else the changes between their reads cannot be applied
    /// exactly.
    fn snapshots_agree(&self, groups: &Groups, at: &BinlogPos) -> Result<()> {
        let read_at = |t: &TableName| {
            self.cp
                .table_positions
                .iter()
                .find(|(n, _)| n == t)
                .map(|(_, p)| p)
        };
        for group in groups.groups() {
            let positions: std::collections::BTreeSet<_> = group.iter().map(read_at).collect();
            if positions.len() > 1 {
                return Err(Error::Schema {
                    table: group.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
                    position: at.to_string(),
                    message: "tables linked by foreign keys were read at different positions (a dump without one snapshot): the changes between their reads cannot be applied exactly with foreign-key-checks; copy them with dm's full phase, or dump them with consistency: flush or snapshot".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> BinlogPos {
        BinlogPos {
            name: "b.000001".into(),
            pos,
        }
    }

    #[test]
    fn places_count_changes_at_one_position_and_skip_what_was_applied() {
        let mut l = Linked::new(Some(Place {
            pos: at(200),
            index: 2,
        }));
        assert_eq!(
            l.place(at(100)),
            (
                Place {
                    pos: at(100),
                    index: 0
                },
                true
            )
        );
        assert!(l.place(at(200)).1);
        assert_eq!(
            l.place(at(200)),
            (
                Place {
                    pos: at(200),
                    index: 1
                },
                true
            )
        );
        assert_eq!(
            l.place(at(200)),
            (
                Place {
                    pos: at(200),
                    index: 2
                },
                false
            )
        );
        assert_eq!(
            l.place(at(300)),
            (
                Place {
                    pos: at(300),
                    index: 0
                },
                false
            )
        );
    }
}
