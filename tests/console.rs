//! The web console in a real browser (Debian's headless Chromium through ChromeDriver): a
//! task seen live and operated from the page, a paused task's failed statement skipped from
//! the page, a viewer's token refused. Screenshots of every page are written under
//! `$CARGO_TARGET_TMPDIR/console-screenshots` (not committed).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ChromeDriver and the headless Chromium it drives; both end with it.
struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        // The WebDriver client's TLS (unused on loopback HTTP) needs a provider chosen.
        dm_core::install_crypto_provider();
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/setup.sh installs chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        // The machine's network is closed: Chromium's own background connections stay off.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1366,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let made = ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match made {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The text of the first element `css` finds, if any.
    async fn text(&self, css: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    /// Waits until the element `css` shows a text `ok` takes; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(t) = self.text(css).await.filter(|t| ok(t)) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({css}: {:?})",
                self.text(css).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) if el.click().await.is_ok() => return,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                r => panic!("cannot click {css}: {:?}", r.err()),
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// A PNG of the page, kept for people to look at.
    async fn shot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Servers with `schema` on the source, dm, and task `web` on database `web` started; the task
/// file.
async fn web_task(schema: &str) -> (MariaDb, MariaDb, Dm, PathBuf) {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(schema).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("web", "all", "src1", &dst, &["web"]),
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    (src, dst, dm, tf)
}

fn stage_of(dm: &Dm, task: &str) -> String {
    dm.subtask(task)
        .map(|s| s["stage"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_is_watched_live_and_paused_and_resumed_from_the_console() {
    let (src, dst, dm, tf) = web_task(
        "CREATE DATABASE web; USE web; CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO t SELECT seq, 0 FROM seq_1_to_2000;",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_loop(&src, stop.clone(), |n| {
        format!("UPDATE web.t SET v = v + 1 WHERE id = {}", n % 2000 + 1)
    });

    let b = Browser::start().await;
    b.open(&format!("http://{}/", dm.addr)).await;
    let row = "tr[data-task='web']";
    b.wait_text(
        &format!("{row} td[data-field='phase']"),
        "the incremental phase",
        |t| t == "incremental",
    )
    .await;
    // Held by the throttle while the writer goes on, the task falls behind: the page's lag
    // moves without a reload.
    dm.ctl_ok(&["throttle", "web", "on"]);
    let lag = format!("{row} td[data-field='lag']");
    let first = b.wait_text(&lag, "a lag", |t| t != "-" && t != "0s").await;
    let later = b.wait_text(&lag, "the lag to move", |t| t != first).await;
    eprintln!("lag on the page: {first} then {later}");
    // A 1366-px wide screen shows the task list without scrolling sideways.
    let fits = b
        .client
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, serde_json::json!(true));
    assert!(
        b.client
            .find_all(Locator::Css(&format!("{row} svg.spark")))
            .await
            .unwrap()
            .len()
            == 2,
        "the lag and throughput sparklines"
    );
    b.shot("tasks").await;
    dm.ctl_ok(&["throttle", "web", "off"]);

    // The task's page: pause and resume by its buttons; the API sees the stage change.
    b.click(&format!("{row} a")).await;
    b.wait_text("h1", "the task's page", |t| t.starts_with("Task web"))
        .await;
    b.click("button[data-action='Pause']").await;
    wait_for(
        "paused through the console",
        Duration::from_secs(30),
        || stage_of(&dm, "web") == "paused",
    )
    .await;
    b.wait_text("h1 .stage", "the page to show the pause", |t| t == "paused")
        .await;
    b.shot("task-paused").await;
    b.click("button[data-action='Resume']").await;
    wait_for(
        "resumed through the console",
        Duration::from_secs(30),
        || stage_of(&dm, "web") == "running",
    )
    .await;
    b.wait_text(
        "[data-source='src1'] [data-field='stage']",
        "running",
        |t| t == "running",
    )
    .await;
    b.shot("task").await;

    // The other pages draw from the API.
    for (page, heading) in [
        ("sources", "Sources"),
        ("members", "Members"),
        ("locks", "Shard DDL locks"),
    ] {
        b.open(&format!("http://{}/#/{page}", dm.addr)).await;
        b.wait_text("main h1", heading, |t| t == heading).await;
        b.shot(page).await;
    }
    b.wait_text("main", "the worker", |t| {
        t.contains("src1") || t.contains("No lock")
    })
    .await;
    b.open(&format!("http://{}/#/check", dm.addr)).await;
    b.type_into(
        "textarea[aria-label='task file']",
        &std::fs::read_to_string(&tf).unwrap(),
    )
    .await;
    b.click("main button.primary").await;
    b.wait_text("main table", "the findings", |t| t.contains("ok"))
        .await;
    b.shot("check").await;
    b.close().await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    wait_caught_up(&dm, "web", &src).await;
    assert_same(&src, &dst, &["web"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_statement_is_shown_and_skipped_from_the_console() {
    let (src, dst, dm, _) =
        web_task("CREATE DATABASE web; CREATE TABLE web.t (id INT PRIMARY KEY, s VARCHAR(20));")
            .await;
    wait_caught_up(&dm, "web", &src).await;
    // The target has the row already: the task stops on a duplicate key.
    dst.exec("INSERT INTO web.t VALUES (7, 'seven')").await;
    src.exec("INSERT INTO web.t VALUES (7, 'seven')").await;
    wait_paused(&dm, "web").await;

    let b = Browser::start().await;
    b.open(&format!("http://{}/#/tasks/web", dm.addr)).await;
    let shown = b
        .wait_text("[data-error]", "the error", |t| t.contains("INSERT INTO"))
        .await;
    assert!(
        shown.contains("Duplicate entry") && shown.contains("Hint"),
        "{shown}"
    );
    b.wait_text("h1 .stage", "the task shown paused", |t| t == "paused")
        .await;
    b.shot("task-error").await;
    b.click("button[data-action='Skip the transaction']").await;
    wait_for("running after the skip", Duration::from_secs(30), || {
        stage_of(&dm, "web") == "running"
    })
    .await;
    b.close().await;
    src.exec("INSERT INTO web.t VALUES (8, 'eight')").await;
    wait_caught_up(&dm, "web", &src).await;
    assert_same(&src, &dst, &["web"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_token_looks_and_its_actions_are_refused() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE web; CREATE TABLE web.t (id INT PRIMARY KEY);")
        .await;
    let (admin, admin_entry) = new_token("ops", "admin");
    let (viewer, viewer_entry) = new_token("watch", "viewer");
    let dm = Dm::start_with(&format!("auth:\n  tokens:\n{admin_entry}{viewer_entry}"));
    let ctl = |args: &[&str]| {
        let mut all = vec!["--token", admin.as_str()];
        all.extend_from_slice(args);
        let (ok, out) = run_ctl(&dm.addr, &all);
        assert!(ok, "{out}");
    };
    let source = dm.file("source.yaml", &source_yaml("src1", &src));
    ctl(&["operate-source", "create", source.to_str().unwrap()]);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("web", "all", "src1", &dst, &["web"]),
    );
    ctl(&["start-task", tf.to_str().unwrap()]);

    let b = Browser::start().await;
    b.open(&format!("http://{}/#/tasks/web", dm.addr)).await;
    // The page loads; the API asks for a token.
    b.wait_text("#login", "the token form", |t| t.contains("token"))
        .await;
    b.type_into("#token", &viewer).await;
    b.click("#login button").await;
    b.wait_text("h1", "the task's page", |t| t.starts_with("Task web"))
        .await;
    b.click("button[data-action='Pause']").await;
    let refused = b
        .wait_text("#notice", "the refusal", |t| t.contains("pause"))
        .await;
    assert!(refused.contains("viewer"), "{refused}");
    // From then on the page offers no action.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pause = b
            .client
            .find(Locator::Css("button[data-action='Pause']"))
            .await
            .unwrap();
        if !pause.is_enabled().await.unwrap() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "actions still offered to a viewer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.shot("viewer-refused").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(stage_of_with(&dm, &admin), "paused");
    b.close().await;
}

/// The task's stage, asked with a token.
fn stage_of_with(dm: &Dm, token: &str) -> String {
    let (_, out) = run_ctl(
        &dm.addr,
        &["--token", token, "-o", "json", "query-status", "web"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v["stage"].as_str().unwrap_or_default().to_string()
}
