//! Exact semantics: a source DDL runs on the target in the session it ran in on the source
//! (sql_mode, time zone, statement time, collations), so the target computes the same values.

mod common;

use common::*;

/// `ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP` written in a +02:00 session at a fixed statement
/// time fills every existing row with that time, in that zone, on the target too; a table
/// created under ANSI_QUOTES and PIPES_AS_CONCAT keeps its meaning; a statement whose meaning
/// depends on NO_BACKSLASH_ESCAPES is never run under other escaping rules (it pauses the
/// task with the statement, and nothing else on the target is touched).
#[tokio::test(flavor = "multi_thread")]
async fn ddl_runs_in_the_source_statements_session() {
    use mysql_async::prelude::Queryable;
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO s.t VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    dst.exec("CREATE DATABASE other; CREATE TABLE other.keep (id INT PRIMARY KEY)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("sem", "all", "src1", &dst, &["s"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "sem", &src).await;

    // Another zone, another time: the values the DDL gives existing rows must be the source's.
    src.exec(
        "SET time_zone = '+02:00'; SET timestamp = 1000000000; \
         ALTER TABLE s.t ADD COLUMN at_dt DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         ADD COLUMN at_ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
    )
    .await;
    // ANSI_QUOTES and PIPES_AS_CONCAT change what a generated column computes.
    src.exec(
        "SET sql_mode = 'ANSI_QUOTES,PIPES_AS_CONCAT'; \
         CREATE TABLE s.g (id INT PRIMARY KEY, a VARCHAR(10), \"b\" VARCHAR(10), \
         ab VARCHAR(30) AS (a || \"b\") PERSISTENT)",
    )
    .await;
    src.exec(
        "INSERT INTO s.g (id, a, b) VALUES (1, 'x', 'y'); INSERT INTO s.t (id, v) VALUES (3, 'c')",
    )
    .await;
    wait_caught_up(&dm, "sem", &src).await;
    assert_same(&src, &dst, &["s"]).await;
    let at: String = dst
        .value("SELECT CAST(at_dt AS CHAR) FROM s.t WHERE id = 1")
        .await;
    assert_eq!(
        at, "2001-09-09 03:46:40",
        "the source's statement time in +02:00"
    );
    let ab: String = dst.value("SELECT ab FROM s.g").await;
    assert_eq!(ab, "xy");

    // One statement on the source under NO_BACKSLASH_ESCAPES; under the default escaping
    // it would be an ALTER plus DROP DATABASE other.
    src.exec(
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; \
         ALTER TABLE s.t COMMENT '\\''; DROP DATABASE other -- '",
    )
    .await;
    let comment: String = src.value("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = 's' AND TABLE_NAME = 't'",
    )
    .await;
    assert_eq!(comment, "\\'; DROP DATABASE other -- ");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let st = dm.subtask("sem").unwrap();
    let on_target: Option<String> = dst
        .conn()
        .await
        .query_first(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = 's' AND TABLE_NAME = 't'",
        )
        .await
        .unwrap();
    assert!(
        st["stage"] == "paused" || on_target.as_deref() == Some(comment.as_str()),
        "applied exactly or refused: {st} / {on_target:?}"
    );
    assert_eq!(
        dst.value::<u64>(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'other'"
        )
        .await,
        1,
        "nothing outside the task's tables is touched"
    );
}
