//! docs/openapi.yaml and the master's routes match both ways: every documented operation is
//! routed by a running dm, and every route the router serves is documented.

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

/// (METHOD, path) of every route the master's router serves.
fn routed_in_code() -> BTreeSet<(String, String)> {
    dm_core::master::served_routes()
        .into_iter()
        .map(|r| (r.verb.as_str().to_string(), r.path.to_string()))
        .collect()
}

#[test]
fn every_route_is_documented_and_every_documented_operation_exists() {
    let docs = documented();
    let code = routed_in_code();
    assert!(code.len() >= 20, "{code:?}");
    assert_eq!(
        docs, code,
        "docs/openapi.yaml and the routes of core/src/api/routes.rs differ"
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

/// `method path` with exactly `headers` (Host included) and `body`: (status, body).
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

/// With `auth.tokens`: no token, 401 on every operation; a viewer's token reads and gets 403
/// on changes; an admin's token does everything, through `dm ctl --token` too. Always: a Host
/// that is not the master's is refused (DNS rebinding), and so is a POST that is not JSON (a
/// web page's form, text/plain or empty POST), with the API's JSON error shape.
#[tokio::test(flavor = "multi_thread")]
async fn only_callers_with_a_token_and_the_masters_name_operate_dm() {
    let (admin, admin_entry) = new_token("ops", "admin");
    let (viewer, viewer_entry) = new_token("watch", "viewer");
    let dm = Dm::start_with(&format!("auth:\n  tokens:\n{admin_entry}{viewer_entry}"));
    let host = ("Host", dm.addr.as_str());
    let json = ("Content-Type", "application/json");
    let bearer = |t: &str| format!("Bearer {t}");
    let (admin_h, viewer_h) = (bearer(&admin), bearer(&viewer));
    let code = |body: &str| -> String {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    for (method, path) in documented() {
        let concrete = path
            .replace("{name}", "nosuch")
            .replace("{id}", "nosuch")
            .replace("{kind}", "worker")
            .replace("{op}", "cancel-evict");
        let (status, body) = raw(&dm.addr, &method, &concrete, &[host, json], "{}");
        assert_eq!(
            (status, code(&body)),
            (401, "DM-API-7301".into()),
            "{method} {path}: {body}"
        );
        let (status, body) = raw(
            &dm.addr,
            &method,
            &concrete,
            &[host, json, ("Authorization", &viewer_h)],
            "{}",
        );
        // How to reach etcd and the stored files are for admins only.
        let admin_only = path == "/api/v1/cluster/etcd" || path.starts_with("/api/v1/config");
        if method == "GET" && !admin_only {
            assert_ne!(status, 401, "{method} {path}: {body}");
            assert_ne!(status, 403, "{method} {path}: {body}");
        } else {
            assert_eq!(
                (status, code(&body)),
                (403, "DM-API-7302".into()),
                "{method} {path}: {body}"
            );
        }
    }
    let auth = ("Authorization", admin_h.as_str());
    let (status, body) = raw(
        &dm.addr,
        "GET",
        "/api/v1/tasks",
        &[("Host", "evil.example"), auth],
        "",
    );
    assert_eq!((status, code(&body)), (403, "DM-API-7303".into()), "{body}");
    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let mut h = vec![host, auth];
        h.extend(ct.map(|c| ("Content-Type", c)));
        let (status, body) = raw(&dm.addr, "POST", "/api/v1/tasks/nosuch/pause", &h, "");
        assert_eq!(
            (status, code(&body)),
            (415, "DM-API-7304".into()),
            "{ct:?}: {body}"
        );
    }

    // dm ctl: refused without the token, with a hint; works with it.
    let (ok, out) = dm.ctl(&["query-status"]);
    assert!(
        !ok && out.contains("DM-API-7301") && out.contains("--token"),
        "{out}"
    );
    dm.ctl_ok(&["--token", &admin, "query-status"]);
    let (ok, out) = dm.ctl(&["--token", &viewer, "pause-task", "nosuch"]);
    assert!(!ok && out.contains("DM-API-7302"), "{out}");
}

/// A master listening beyond loopback without TLS and tokens does not start, and says how to
/// fix it; `insecure: true` starts it anyway.
#[test]
fn a_master_beyond_loopback_without_tls_and_tokens_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dm.yaml");
    let port = free_port();
    let write_cfg = |extra: &str| {
        let data = dir.path().join("data");
        let text = format!(
            "data-dir: {}\nmaster-addr: 0.0.0.0:{port}\n{extra}",
            data.display()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    write_cfg("");
    let out = std::process::Command::new(dm_bin())
        .args(["standalone", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("without TLS and tokens") && text.contains("insecure: true"),
        "{text}"
    );

    // Accepted on the user's word, and shown as such.
    write_cfg("insecure: true\n");
    let mut child = std::process::Command::new(dm_bin())
        .args(["standalone", "-c", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut shown = String::new();
    for _ in 0..100 {
        let (ok, out) = run_ctl(&addr, &["list-member"]);
        if ok {
            shown = out;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(shown.contains("INSECURE"), "{shown}");
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
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            n += metrics_exported(t["expr"].as_str().unwrap());
        }
    }
    assert!(n >= 10);
}

/// The example alerting rules parse and use only metrics dm exports.
#[test]
fn the_alert_rules_use_only_metrics_dm_exports() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/prometheus-alerts.yml"
    ))
    .unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    let mut n = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            assert!(rule["alert"].is_string() && rule["annotations"]["summary"].is_string());
            n += metrics_exported(rule["expr"].as_str().unwrap());
        }
    }
    assert!(n >= 7);
}

/// Asserts every `dm_*` metric `expr` names is one dm exports; returns how many it names.
fn metrics_exported(expr: &str) -> usize {
    let code = ["core/src/master/prometheus.rs", "core/src/metrics.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect::<String>();
    let metric = regex::Regex::new(r"\bdm_[a-z_]+").unwrap();
    let mut n = 0;
    for m in metric.find_iter(expr) {
        assert!(
            code.contains(&format!("{}{{", m.as_str()))
                || code.contains(&format!("{} {{", m.as_str()))
                || code.contains(&format!("# TYPE {} ", m.as_str())),
            "{} is not exported",
            m.as_str()
        );
        n += 1;
    }
    n
}

/// A client that opens a connection and never finishes its request headers does not keep
/// it: the master closes it (after 10 s), so idle connections cannot pile up.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_sends_no_request_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dm = Dm::start();
    let mut conn = tokio::net::TcpStream::connect(&dm.addr).await.unwrap();
    conn.write_all(b"GET /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), conn.read(&mut buf)).await;
    // Closed (EOF or a 408 answer), not left open.
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the connection stayed open for 30 s"
    );
}

/// Every refusal answers the API's JSON error shape, also those axum makes itself: a body
/// that is not JSON, JSON of the wrong shape, a path or a method the API does not have.
#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_a_json_error() {
    let dm = Dm::start();
    let host = [
        ("Host", dm.addr.as_str()),
        ("Content-Type", "application/json"),
    ];
    for (method, path, body, status) in [
        ("POST", "/api/v1/tasks", "not json", 400),
        ("POST", "/api/v1/tasks", "{\"file\": 1}", 422),
        ("GET", "/api/v1/nothing-here", "", 404),
        ("DELETE", "/api/v1/members", "", 405),
    ] {
        let (got, text) = raw(&dm.addr, method, path, &host, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert!(
            v["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("DM-REQUEST-"))
                && v["message"].as_str().is_some_and(|m| !m.is_empty())
                && v["hint"].is_string(),
            "{method} {path}: {v}"
        );
    }
}
