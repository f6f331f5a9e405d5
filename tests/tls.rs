//! TLS to the source and the target (`security` in the source and task files): a migration
//! between servers that refuse anything but TLS, and the errors when TLS is missing or the
//! certificate is signed by another CA.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn migrates_between_servers_that_require_tls() {
    let tls = TlsFiles::generate();
    let (src, dst) = (MariaDb::start_tls(1, &tls), MariaDb::start_tls(2, &tls));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO s.t VALUES (1, 'before'), (2, 'before')",
    )
    .await;
    let dm = Dm::start();

    // Without `security` the source refuses dm, and dm says what to do.
    let plain = source_yaml("s1", &src).replace(
        &format!("\n  security:\n    ssl-ca: {}", tls.ca.display()),
        "",
    );
    let sf = dm.file("plain.yaml", &plain);
    let (ok, out) = dm.ctl(&["operate-source", "create", sf.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("security:"),
        "the hint names the TLS settings: {out}"
    );

    // A CA that did not sign the server's certificate: refused too.
    let other = TlsFiles::generate();
    let wrong = source_yaml("s1", &src).replace(
        &tls.ca.display().to_string(),
        &other.ca.display().to_string(),
    );
    let sf = dm.file("wrong-ca.yaml", &wrong);
    let (ok, out) = dm.ctl(&["operate-source", "create", sf.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    // A missing CA file is a config error naming the field.
    let missing =
        source_yaml("s1", &src).replace(&tls.ca.display().to_string(), "/nonexistent/ca.pem");
    let sf = dm.file("missing.yaml", &missing);
    let (ok, out) = dm.ctl(&["operate-source", "create", sf.to_str().unwrap()]);
    assert!(
        !ok && out.contains("ssl-ca") && out.contains("missing.yaml:"),
        "{out}"
    );

    dm.create_source("s1", &src);
    let tf = dm.file("task.yaml", &task_yaml("tls", "all", "s1", &dst, &["s"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "tls", &src).await;
    src.exec("INSERT INTO s.t VALUES (3, 'after'); UPDATE s.t SET v = 'changed' WHERE id = 1")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_caught_up(&dm, "tls", &src).await;
    assert_eq!(assert_same(&src, &dst, &["s"]).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_https_only_when_tls_is_configured() {
    let tls = TlsFiles::generate();
    let dm = Dm::start_with(&format!(
        "tls:\n  cert: {}\n  key: {}\n",
        tls.cert.display(),
        tls.key.display()
    ));
    let ca = tls.ca.display().to_string();
    let (ok, out) = run_ctl(&dm.addr, &["--tls-ca", &ca, "operate-source", "show"]);
    assert!(ok, "{out}");
    // Without the CA the certificate is not trusted; the hint says what to pass.
    let (ok, out) = run_ctl(&format!("https://{}", dm.addr), &["operate-source", "show"]);
    assert!(!ok && out.contains("--tls-ca"), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    // A CA that did not sign it: refused as well.
    let other = TlsFiles::generate();
    let (ok, out) = run_ctl(
        &dm.addr,
        &[
            "--tls-ca",
            &other.ca.display().to_string(),
            "operate-source",
            "show",
        ],
    );
    assert!(!ok, "{out}");
    // Plain HTTP gets no answer.
    let (ok, out) = run_ctl(&format!("http://{}", dm.addr), &["operate-source", "show"]);
    assert!(!ok, "{out}");
}

/// Mutual TLS with TiDB DM's `cert-allowed-cn`: a client certificate with a listed name
/// operates dm; one with another name gets 403 with the reason; none at all, no connection.
#[tokio::test(flavor = "multi_thread")]
async fn only_client_certificates_with_an_allowed_name_operate_dm() {
    let tls = TlsFiles::generate();
    let dm = Dm::start_with(&format!(
        "tls:\n  cert: {}\n  key: {}\n  ca: {}\n  cert-allowed-cn: [dm-admin]\n",
        tls.cert.display(),
        tls.key.display(),
        tls.ca.display()
    ));
    let ca = tls.ca.display().to_string();
    let with = |pair: &(std::path::PathBuf, std::path::PathBuf), args: &[&str]| {
        let (cert, key) = (pair.0.display().to_string(), pair.1.display().to_string());
        let mut all = vec!["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
        all.extend_from_slice(args);
        run_ctl(&dm.addr, &all)
    };
    let (ok, out) = with(&tls.admin, &["operate-source", "show"]);
    assert!(ok, "{out}");
    let (ok, out) = with(&tls.stranger, &["pause-task", "nosuch"]);
    assert!(
        !ok && out.contains("DM-API-7302") && out.contains("stranger"),
        "{out}"
    );
    let (ok, out) = run_ctl(&dm.addr, &["--tls-ca", &ca, "operate-source", "show"]);
    assert!(!ok && out.contains("--tls-cert"), "{out}");
}
