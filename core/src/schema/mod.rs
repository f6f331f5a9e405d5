//! The schema tracker: the column model of every migrated table at the current binlog
//! position. It is seeded from the source's `information_schema` when a table is snapshotted
//! (or when the incremental phase starts without a snapshot) and then changed only by the DDL
//! statements the incremental phase replicates, parsed with `sqlparser`. Row events are decoded
//! with it: the binlog's table map alone does not say which columns are unsigned (without
//! `binlog_row_metadata=FULL`) or JSON (MariaDB logs JSON as a BLOB).

mod ddl;
pub mod foreign_keys;
pub mod retarget;
mod statement;
mod tracker;

pub use ddl::{column_definitions, parse_ddl, unparsed_table_ddl, Ddl, DdlKind};
pub use statement::{check_operator_statement, classify_statement, DmlVerb, StatementClass};
pub use tracker::{list_schemas, list_tables, load_table, load_tables, tracker_now, Tracker};
