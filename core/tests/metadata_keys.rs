//! The metadata store's key layout is written once in code (`core/src/meta/keys.rs`) and
//! shown to people in docs/architecture.md: the table there names every key the code has.

use std::path::Path;

#[test]
fn the_architecture_doc_names_every_metadata_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(root.join("src/meta/keys.rs")).unwrap();
    let doc = std::fs::read_to_string(root.join("../docs/architecture.md")).unwrap();
    let table: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `/dm/")).collect();
    // Every literal key or prefix in the code: "/dm/..." (the shard keys are built from
    // their prefix and a name: `{PREFIX}ddl/` is `/dm/shard/ddl/`).
    let literal = regex::Regex::new(r#""(/dm/[a-z/-]*)""#).unwrap();
    let built = regex::Regex::new(r#"\{PREFIX\}([a-z-]+/)"#).unwrap();
    let mut keys: Vec<String> = literal
        .captures_iter(&code)
        .map(|c| c[1].to_string())
        .collect();
    keys.extend(
        built
            .captures_iter(&code)
            .map(|c| format!("/dm/shard/{}", &c[1])),
    );
    assert!(keys.len() > 20, "found only {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !matches!(k.as_str(), "/dm/" | "/dm/shard/" | "/dm/ping"))
        .filter(|k| !table.iter().any(|row| row.contains(&format!("`{k}"))))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md's key table does not name {missing:?}"
    );
}
