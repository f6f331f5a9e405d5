//! docs/openapi.yaml and the master's routes match both ways: every documented operation is
//! routed by a running dm, and every route in the code is documented.

mod common;

use common::*;
use std::collections::BTreeSet;

/// (METHOD, path) of every operation in docs/openapi.yaml.
fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docs/openapi.yaml parses");
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in ops.as_mapping().unwrap() {
            out.insert((
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// (METHOD, path) of every `.route(...)` in the master's router.
fn routed_in_code() -> BTreeSet<(String, String)> {
    let code = ["core/src/master/api.rs", "core/src/metrics.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect::<String>();
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*([^\n]+)\)"#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|delete|put)\(").unwrap();
    let mut out = BTreeSet::new();
    for c in route.captures_iter(&code) {
        for m in method.captures_iter(&c[2]) {
            out.insert((m[1].to_uppercase(), c[1].to_string()));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_operation_exists() {
    let docs = documented();
    let code = routed_in_code();
    assert!(code.len() >= 20, "{code:?}");
    assert_eq!(
        docs, code,
        "docs/openapi.yaml and core/src/master/api.rs differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_master_answers_every_documented_operation() {
    let dm = Dm::start();
    let http = reqwest_like::Client::new(&dm.addr);
    for (method, path) in documented() {
        let concrete = path
            .replace("{name}", "nosuch")
            .replace("{id}", "nosuch")
            .replace("{kind}", "worker")
            .replace("{op}", "cancel-evict");
        let (status, body) = http.call(&method, &concrete).await;
        // The router's own 404/405 have no JSON body; a handler's errors do.
        let routed = !(status == 405 || (status == 404 && !body.contains("\"code\"")));
        assert!(routed, "{method} {path}: {status} {body}");
    }
}

/// A tiny HTTP/1.1 client over a TCP stream: enough to call the API without a dependency.
mod reqwest_like {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Client(String);

    impl Client {
        pub fn new(addr: &str) -> Self {
            Client(addr.to_string())
        }

        pub async fn call(&self, method: &str, path: &str) -> (u16, String) {
            let mut s = tokio::net::TcpStream::connect(&self.0).await.unwrap();
            let body = "{}";
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.0,
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            let status = out
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            (status, body)
        }
    }
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_dm_exports() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let code = ["core/src/master/api.rs", "core/src/metrics.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect::<String>();
    let metric = regex::Regex::new(r"\bdm_[a-z_]+").unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            for m in metric.find_iter(t["expr"].as_str().unwrap()) {
                assert!(
                    code.contains(&format!("{}{{", m.as_str()))
                        || code.contains(&format!("{} {{", m.as_str()))
                        || code.contains(&format!("# TYPE {} ", m.as_str())),
                    "{} is not exported",
                    m.as_str()
                );
                n += 1;
            }
        }
    }
    assert!(n >= 10);
}
