//! Dependencies between dm-core's top-level modules point one way: a module never reaches
//! itself again through `crate::` imports. A new back edge fails here with the circle named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its code (tests left out) names as `crate::x`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path = regex::Regex::new(r"crate::(\w+)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let first = regex::Regex::new(r"(?:^|,)\s*(\w+)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let top = rel.iter().next().unwrap().to_string_lossy();
            let top = top.trim_end_matches(".rs").to_string();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            let mut names: BTreeSet<String> =
                path.captures_iter(code).map(|c| c[1].to_string()).collect();
            for g in group.captures_iter(code) {
                names.extend(first.captures_iter(&g[1]).map(|c| c[1].to_string()));
            }
            names.remove(&top);
            graph.entry(top).or_default().extend(names);
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// A circle through `from`, if there is one: `from -> ... -> from`.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    while let Some((at, trail)) = stack.pop() {
        for next in &graph[&at] {
            if next == from {
                let mut circle = trail.clone();
                circle.push(from.to_string());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut t = trail.clone();
                t.push(next.clone());
                stack.push((next.clone(), t));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = module_graph();
    assert!(graph.len() > 20, "modules found: {:?}", graph.keys());
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|m| circle_through(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(
        circles.is_empty(),
        "module import cycles (move the shared part down, or pass it in):\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_leaf_modules_import_nothing_of_dm() {
    let graph = module_graph();
    for leaf in ["position", "table", "abort_on_drop", "durable", "failpoint"] {
        assert_eq!(
            graph.get(leaf),
            Some(&BTreeSet::new()),
            "{leaf} must stay a leaf"
        );
    }
}
