//! The error code table: codes are unique, keep their published meaning, and docs/errors.md
//! lists exactly the table.

use dm_core::error::codes::{self, ALL};

/// Every code ever published, in the table's order. A code may be added at the end of its
/// group; one listed here is never renamed, reused or removed.
const PUBLISHED: &[&str] = &[
    "DM-CONFIG-1001",
    "DM-META-2001",
    "DM-META-2002",
    "DM-CLUSTER-2101",
    "DM-CLUSTER-2102",
    "DM-SOURCE-3001",
    "DM-TARGET-4001",
    "DM-TARGET-4002",
    "DM-BINLOG-5001",
    "DM-RELAY-5101",
    "DM-DDL-6001",
    "DM-SCHEMA-6002",
    "DM-FILTER-6003",
    "DM-DDL-6004",
    "DM-SHARD-6101",
    "DM-PLUGIN-6201",
    "DM-EVENT-6301",
    "DM-EVENT-6302",
    "DM-EVENT-6303",
    "DM-REQUEST-7001",
    "DM-REQUEST-7002",
    "DM-CHECK-7101",
    "DM-API-7301",
    "DM-API-7302",
    "DM-API-7303",
    "DM-API-7304",
    "DM-TASK-8001",
    "DM-TASK-8002",
    "DM-STARTUP-9801",
    "DM-IO-9001",
    "DM-INTERNAL-9901",
];

#[test]
fn codes_are_unique_well_formed_and_never_change() {
    let listed: Vec<&str> = ALL.iter().map(|c| c.code).collect();
    assert_eq!(listed, PUBLISHED, "the code table changed");
    let form = regex::Regex::new(r"^DM-[A-Z]+-\d{4}$").unwrap();
    for c in ALL {
        assert!(form.is_match(c.code), "{}", c.code);
        assert!(!c.what.is_empty() && !c.fix.is_empty(), "{}", c.code);
    }
    assert_eq!(
        codes::info("DM-TASK-8001").map(|c| c.code),
        Some(codes::CANCELLED)
    );
}

/// docs/errors.md's table as the code table renders it.
fn rendered() -> String {
    let mut out = String::from("| code | what | typical fix |\n|---|---|---|\n");
    for c in ALL {
        out.push_str(&format!("| {} | {} | {} |\n", c.code, c.what, c.fix));
    }
    out
}

#[test]
fn docs_list_exactly_the_code_table() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md")).unwrap();
    let table = rendered();
    assert!(
        doc.contains(&table),
        "docs/errors.md must hold the table of core/src/error/codes.rs; replace its table with:\n{table}"
    );
}
