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

/// The target's databases: name -> default character set.
async fn databases(db: &MariaDb) -> std::collections::BTreeMap<String, String> {
    use mysql_async::prelude::Queryable;
    db.conn()
        .await
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys', 'test', 'dm_meta')",
        )
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Database statements follow TiDB DM's routes: ALTER DATABASE (which the SQL parser does
/// not know) and CREATE DATABASE with options are applied, under the name a schema rule
/// gives; a database whose tables all go elsewhere is never created empty; a DROP DATABASE
/// of a database others are merged into is left out (the merged rows stay).
#[tokio::test(flavor = "multi_thread")]
async fn database_statements_follow_schema_routes() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE gbk3 CHARACTER SET utf8mb4; CREATE TABLE gbk3.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO gbk3.t VALUES (1, 'a'); \
         CREATE DATABASE sharding1 CHARACTER SET latin1; \
         CREATE TABLE sharding1.t1 (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO sharding1.t1 VALUES (1, 'x'); \
         CREATE DATABASE away1; CREATE TABLE away1.t1 (id INT PRIMARY KEY); INSERT INTO away1.t1 VALUES (1); \
         CREATE DATABASE lone1 CHARACTER SET latin1; CREATE TABLE lone1.t1 (id INT PRIMARY KEY); \
         CREATE TABLE lone1.stay (id INT PRIMARY KEY); INSERT INTO lone1.stay VALUES (7)",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let mut yaml = task_yaml(
        "dbs",
        "all",
        "src1",
        &dst,
        &["gbk3", "sharding*", "away*", "lone*", "newdb"],
    )
    .replacen(
        "    block-allow-list: sel\n",
        "    block-allow-list: sel\n    route-rules: [tables, schemas, away, lone]\n",
        1,
    );
    yaml.push_str(
        "routes:
  tables:
    schema-pattern: sharding*
    table-pattern: t*
    target-schema: db_target
    target-table: t_target
  schemas:
    schema-pattern: sharding*
    target-schema: db_target
  away:
    schema-pattern: away*
    table-pattern: t*
    target-schema: merged_away
    target-table: t
  lone:
    schema-pattern: lone1
    table-pattern: t1
    target-schema: merged_away
    target-table: lone_t1
",
    );
    let tf = dm.file("task.yaml", &yaml);
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "dbs", &src).await;
    let full = databases(&dst).await;
    assert_eq!(
        full.keys().map(String::as_str).collect::<Vec<_>>(),
        ["db_target", "gbk3", "lone1", "merged_away"],
        "only databases tables land in (sharding1 goes to db_target; away1's tables to merged_away)"
    );
    assert_eq!(full["db_target"], "latin1", "sharding1's character set");
    assert_eq!(
        full["lone1"], "latin1",
        "a table that stays creates its database like the source's"
    );

    src.exec(
        "ALTER DATABASE gbk3 CHARSET gbk; \
         CREATE DATABASE newdb DEFAULT CHARACTER SET gbk COLLATE gbk_bin; \
         CREATE TABLE newdb.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO newdb.t VALUES (1, 'n'); \
         CREATE DATABASE sharding2; CREATE TABLE sharding2.t2 (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO sharding2.t2 VALUES (2, 'y'); \
         CREATE DATABASE away2; CREATE TABLE away2.t2 (id INT PRIMARY KEY); INSERT INTO away2.t2 VALUES (2); \
         ALTER DATABASE away2 CHARSET latin1; \
         USE gbk3; ALTER DATABASE COLLATE gbk_bin; CREATE TABLE gbk3.t2 (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO gbk3.t2 VALUES (1, 'b')",
    )
    .await;
    wait_caught_up(&dm, "dbs", &src).await;
    src.exec("DROP DATABASE sharding2; DROP DATABASE away1")
        .await;
    src.exec("INSERT INTO gbk3.t VALUES (2, 'c')").await;
    wait_caught_up(&dm, "dbs", &src).await;

    let after = databases(&dst).await;
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        ["db_target", "gbk3", "lone1", "merged_away", "newdb"]
    );
    assert_eq!(after["gbk3"], "gbk", "ALTER DATABASE applied");
    assert_eq!(after["newdb"], "gbk", "CREATE DATABASE with its options");
    assert_eq!(
        after["db_target"], "latin1",
        "CREATE DATABASE sharding2 changed nothing"
    );
    assert_same(&src, &dst, &["gbk3", "newdb"]).await;
    let stay: i32 = dst.value("SELECT id FROM lone1.stay").await;
    assert_eq!(stay, 7);
    let merged: Vec<(i32, String)> = {
        use mysql_async::prelude::Queryable;
        dst.conn()
            .await
            .query("SELECT id, v FROM db_target.t_target ORDER BY id")
            .await
            .unwrap()
    };
    assert_eq!(
        merged,
        [(1, "x".to_string()), (2, "y".to_string())],
        "DROP DATABASE sharding2 left the merged rows"
    );
    let away: Vec<i32> = {
        use mysql_async::prelude::Queryable;
        dst.conn()
            .await
            .query("SELECT id FROM merged_away.t ORDER BY id")
            .await
            .unwrap()
    };
    assert_eq!(away, [1, 2], "the routed rows of away1 and away2");
}

/// A DDL written in a `SET NAMES gbk` session (TiDB DM's gbk workload): its bytes are GBK, not
/// UTF-8, and the target reads them as GBK too, so the comment and the ENUM members keep their
/// characters (they became U+FFFD).
#[tokio::test(flavor = "multi_thread")]
async fn ddl_written_in_another_client_character_set_keeps_its_characters() {
    use mysql_async::prelude::Queryable;
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE g CHARACTER SET gbk").await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("gb", "all", "src1", &dst, &["g"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "gb", &src).await;
    // 你好 and 中, 文 in GBK.
    let (nihao, zhong, wen): (&[u8], &[u8], &[u8]) =
        (b"\xC4\xE3\xBA\xC3", b"\xD6\xD0", b"\xCE\xC4");
    let mut ddl: Vec<u8> = b"CREATE TABLE g.t (c INT PRIMARY KEY COMMENT '".to_vec();
    ddl.extend_from_slice(nihao);
    ddl.extend_from_slice(b"', e ENUM('");
    ddl.extend_from_slice(zhong);
    ddl.extend_from_slice(b"', '");
    ddl.extend_from_slice(wen);
    ddl.extend_from_slice(b"') CHARACTER SET gbk, v VARCHAR(10) CHARACTER SET gbk)");
    let mut insert: Vec<u8> = b"INSERT INTO g.t VALUES (1, '".to_vec();
    insert.extend_from_slice(wen);
    insert.extend_from_slice(b"', '");
    insert.extend_from_slice(nihao);
    insert.extend_from_slice(b"')");
    let mut c = src.conn().await;
    c.query_drop("SET NAMES gbk").await.unwrap();
    c.query_drop(ddl.as_slice()).await.unwrap();
    c.query_drop(insert.as_slice()).await.unwrap();
    drop(c);
    wait_caught_up(&dm, "gb", &src).await;
    assert_same(&src, &dst, &["g"]).await;
    let comment: String = dst
        .value("SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'g' AND COLUMN_NAME = 'c'")
        .await;
    assert_eq!(comment, "你好");
}
