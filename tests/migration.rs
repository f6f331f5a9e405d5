//! Scenarios against real MariaDB servers and the real `dm` binary: every one ends by
//! comparing source and target row by row.

mod common;

use common::*;
use std::time::Duration;

const TYPES_TABLE: &str = "CREATE TABLE typ.all_types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d DECIMAL(65,30), f FLOAT, db DOUBLE, b BIT(10), e ENUM('a','b','c'), st SET('x','y','z'),
  c CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(20), bl BLOB,
  dt DATE, tm TIME(3), dtt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, yr YEAR,
  js JSON, g GEOMETRY NULL
) DEFAULT CHARSET = utf8mb4";

/// Rows with every type at its limits, ids from `base`.
fn extremes(base: i32) -> String {
    format!(
        "INSERT INTO typ.all_types VALUES
 ({a}, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -3.40282e38, -1.7976931348623157e308,
  b'1111111111', 'c', 'x,z', 'emoji 😀', 'ünïcödé ✓ 𝄞', REPEAT('long text ', 200), 'café',
  X'00FF7F80', X'000102FEFF', X'DEADBEEF00', '1000-01-01', '-838:59:59.000', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07.999999', 1901, '{{\"a\": [1, 2, {{\"b\": null}}], \"s\": \"é\"}}', ST_GeomFromText('POINT(1 2)')),
 ({b}, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  '99999999999999999999999999999999999.999999999999999999999999999999', 1.17549e-38, 2.2250738585072014e-308,
  b'0000000001', 'a', '', '', '', '', '',
  X'00000000', X'', X'', '9999-12-31', '838:59:59.999', '1000-01-01 00:00:00.000001',
  '1970-01-01 00:00:01.000000', 2155, '[]', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')),
 ({c}, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '0.000000000000000000000000000001', 0.1, 0.1, b'0', 'b', 'x,y,z',
  'a''quote', 'back\\\\slash', 'tab\\tnewline\\n', 'x', X'20202020', X'5C27', X'0A0D', '2024-02-29', '-00:00:00.001',
  '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.5', 0, 'null', NULL),
 ({n}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        a = base,
        b = base + 1,
        c = base + 2,
        n = base + 3
    )
}

const ZERO_DATES: &str = "SET SESSION sql_mode = ''; INSERT INTO typ.zero_dates VALUES
  (ID, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '2020-00-00')";

async fn setup_source(src: &MariaDb) {
    src.exec("CREATE DATABASE typ; CREATE DATABASE other").await;
    src.exec(TYPES_TABLE).await;
    src.exec("CREATE TABLE typ.zero_dates (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL DEFAULT NULL, partial DATE)")
        .await;
    src.exec("CREATE TABLE typ.nokey (a INT, b VARCHAR(10))")
        .await;
    src.exec("CREATE TABLE typ.uk (id INT NOT NULL, v VARCHAR(10), UNIQUE KEY u (id))")
        .await;
    src.exec("CREATE TABLE other.ignored (id INT PRIMARY KEY)")
        .await;
    src.exec("INSERT INTO other.ignored VALUES (1)").await;
    src.exec(&extremes(1)).await;
    src.exec(&ZERO_DATES.replace("ID", "1")).await;
    src.exec("INSERT INTO typ.nokey VALUES (1, 'a'), (1, 'a'), (2, NULL)")
        .await;
    src.exec("INSERT INTO typ.uk VALUES (1, 'a'), (2, 'b')")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn all_types_full_then_incremental_with_ddl() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    setup_source(&src).await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file(
        "task.yaml",
        &task_yaml("types", "all", "src1", &dst, &["typ"]),
    );
    let check = dm.ctl_ok(&["check-task", tf.to_str().unwrap()]);
    assert!(
        check.contains("`typ`.`nokey`"),
        "check-task names keyless tables:\n{check}"
    );
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);

    // Changes racing with the full phase, then after it.
    src.exec(&extremes(100)).await;
    src.exec("UPDATE typ.all_types SET vc = 'changed', biu = 18446744073709551614, ts = '2001-09-09 01:46:40' WHERE id = 1").await;
    src.exec("DELETE FROM typ.all_types WHERE id = 2").await;
    wait_caught_up(&dm, "types", &src).await;
    src.exec(&extremes(200)).await;
    src.exec(&ZERO_DATES.replace("ID", "2")).await;
    src.exec("UPDATE typ.all_types SET js = '{\"k\": 1}', g = ST_GeomFromText('LINESTRING(0 0,1 1)'), b = b'1010101010' WHERE id IN (100, 201)").await;
    src.exec("DELETE FROM typ.all_types WHERE id = 202").await;
    src.exec("UPDATE typ.nokey SET b = 'z' WHERE a = 2").await;
    src.exec("DELETE FROM typ.nokey WHERE a = 1 LIMIT 1").await;
    src.exec("UPDATE typ.uk SET v = 'bb' WHERE id = 2").await;
    src.exec(
        "BEGIN; INSERT INTO typ.uk VALUES (3, 'c'); UPDATE typ.uk SET id = 4 WHERE id = 3; COMMIT",
    )
    .await;
    src.exec("INSERT INTO other.ignored VALUES (2)").await;

    // DDL, each followed by rows that need the new schema.
    src.exec(
        "ALTER TABLE typ.all_types ADD COLUMN added BIGINT UNSIGNED NOT NULL DEFAULT 7 AFTER id",
    )
    .await;
    src.exec("INSERT INTO typ.all_types (id, added, biu) VALUES (300, 18446744073709551615, 5)")
        .await;
    src.exec("ALTER TABLE typ.all_types MODIFY COLUMN vc VARCHAR(200), DROP COLUMN tx")
        .await;
    src.exec("UPDATE typ.all_types SET vc = REPEAT('w', 150) WHERE id = 300")
        .await;
    src.exec("CREATE INDEX idx_i ON typ.all_types (i)").await;
    src.exec("DROP INDEX idx_i ON typ.all_types").await;
    src.exec(
        "CREATE TABLE typ.later (id BIGINT UNSIGNED PRIMARY KEY, v JSON, t TIMESTAMP(3) NULL)",
    )
    .await;
    src.exec("INSERT INTO typ.later VALUES (18446744073709551615, '{\"x\": [true]}', '2030-01-01 00:00:00.123')").await;
    src.exec("RENAME TABLE typ.later TO typ.renamed").await;
    src.exec("INSERT INTO typ.renamed VALUES (1, NULL, NULL)")
        .await;
    src.exec("CREATE TABLE typ.dropme (id INT PRIMARY KEY)")
        .await;
    src.exec("INSERT INTO typ.dropme VALUES (1)").await;
    src.exec("DROP TABLE typ.dropme").await;
    src.exec("TRUNCATE TABLE typ.zero_dates").await;
    src.exec(&ZERO_DATES.replace("ID", "3")).await;
    src.exec("ALTER TABLE typ.uk ADD COLUMN w INT FIRST").await;
    src.exec("INSERT INTO typ.uk VALUES (9, 5, 'e')").await;

    wait_caught_up(&dm, "types", &src).await;
    let rows = assert_same(&src, &dst, &["typ"]).await;
    assert!(rows > 15, "compared {rows} rows");
    // The block-allow list kept `other` out.
    assert!(tables_of(&dst, &["other"]).await.is_empty());
    let st = dm.subtask("types").unwrap();
    assert_eq!(st["phase"], "incremental");
    assert!(st["rows_applied"].as_u64().unwrap() > 0);
}

/// Inserts, updates and deletes in small transactions until told to stop.
fn spawn_writer(
    src: &MariaDb,
    tables: usize,
) -> (
    tokio::task::JoinHandle<u64>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opts = src.opts();
    let flag = stop.clone();
    let h = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let mut n = 0u64;
        let mut id = 1_000_000u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let t = (n as usize % tables) + 1;
            let k = (n * 7919) % 20_000 + 1;
            let sql = match n % 4 {
                0 => format!("INSERT INTO k.t{t} (id, v, pad) VALUES ({id}, {n}, REPEAT('i', 50))"),
                1 => format!("UPDATE k.t{t} SET v = v + 1, pad = 'u{n}' WHERE id = {k}"),
                2 => format!("DELETE FROM k.t{t} WHERE id = {}", k + 1),
                _ => format!("BEGIN; INSERT INTO k.t{t} (id, v, pad) VALUES ({}, 1, 'txn'); UPDATE k.t{t} SET v = -v WHERE id = {k}; COMMIT", id + 1),
            };
            id += 2;
            c.query_drop(sql).await.unwrap();
            n += 1;
        }
        n
    });
    (h, stop)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_full_and_incremental_loses_and_duplicates_nothing() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    let tables = 4;
    src.exec("CREATE DATABASE k").await;
    for t in 1..=tables {
        src.exec(&format!(
            "CREATE TABLE k.t{t} (id BIGINT PRIMARY KEY, v BIGINT, pad VARCHAR(200))"
        ))
        .await;
        src.exec(&format!(
            "USE k; INSERT INTO k.t{t} SELECT seq, seq, REPEAT('p', 150) FROM seq_1_to_40000"
        ))
        .await;
    }
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("k9", "all", "src1", &dst, &["k"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    let (writer, stop) = spawn_writer(&src, tables);

    // Kill in the middle of the full phase.
    wait_for(
        "the full phase to copy rows",
        Duration::from_secs(60),
        || {
            dm.subtask("k9")
                .is_some_and(|s| s["rows_loaded"].as_u64().unwrap_or(0) > 0)
        },
    )
    .await;
    let st = dm.subtask("k9").unwrap();
    eprintln!("killing during the full phase at {st}");
    dm.kill9();
    dm.restart();

    // Kill a few times during the incremental phase while the writer runs.
    wait_for("the incremental phase", Duration::from_secs(120), || {
        dm.subtask("k9")
            .is_some_and(|s| s["phase"] == "incremental")
    })
    .await;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        dm.kill9();
        dm.restart();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    wait_caught_up(&dm, "k9", &src).await;
    let rows = assert_same(&src, &dst, &["k"]).await;
    eprintln!("{writes} writer statements, {rows} rows compared");
    assert!(writes > 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_from_checkpoint_and_stop_start_task_continues() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY, v INT)")
        .await;
    src.exec("INSERT INTO r.t VALUES (1, 1)").await;
    let mut dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("r", "all", "src1", &dst, &["r"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "r", &src).await;

    // Changes made while dm is down are applied after it comes back: sources and tasks
    // survive in the data dir, the position in the target.
    dm.kill9();
    src.exec("INSERT INTO r.t VALUES (2, 2); UPDATE r.t SET v = 10 WHERE id = 1")
        .await;
    dm.restart();
    wait_caught_up(&dm, "r", &src).await;
    assert_same(&src, &dst, &["r"]).await;

    // pause/resume and stop/start keep the position.
    dm.ctl_ok(&["pause-task", "r"]);
    src.exec("INSERT INTO r.t VALUES (3, 3)").await;
    wait_for("paused", Duration::from_secs(10), || {
        dm.subtask("r").is_some_and(|s| s["stage"] == "paused")
    })
    .await;
    dm.ctl_ok(&["resume-task", "r"]);
    wait_caught_up(&dm, "r", &src).await;
    dm.ctl_ok(&["stop-task", "r"]);
    src.exec("DELETE FROM r.t WHERE id = 2").await;
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "r", &src).await;
    assert_same(&src, &dst, &["r"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_and_target_outages_are_retried_and_shown() {
    let (mut src, mut dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE o; CREATE TABLE o.t (id INT PRIMARY KEY, v INT)")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("o", "all", "src1", &dst, &["o"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    src.exec("INSERT INTO o.t VALUES (1, 1)").await;
    wait_caught_up(&dm, "o", &src).await;

    // The source goes away: the error shows (stage `error`), the task keeps trying, and continues on the
    // source's new binlog file when it is back.
    src.stop();
    wait_for("the source error", Duration::from_secs(30), || {
        dm.subtask("o")
            .is_some_and(|s| s["last_error"]["code"] == "DM-SOURCE-3001" && s["stage"] == "error")
    })
    .await;
    src.start_again();
    src.exec("INSERT INTO o.t VALUES (2, 2)").await;
    wait_caught_up(&dm, "o", &src).await;

    // The target goes away while changes arrive.
    dst.stop();
    src.exec("UPDATE o.t SET v = 20 WHERE id = 2; INSERT INTO o.t VALUES (3, 3)")
        .await;
    wait_for("the target error", Duration::from_secs(30), || {
        dm.subtask("o")
            .is_some_and(|s| s["last_error"]["code"] == "DM-TARGET-4001" && s["stage"] == "error")
    })
    .await;
    dst.start_again();
    wait_caught_up(&dm, "o", &src).await;
    assert_eq!(assert_same(&src, &dst, &["o"]).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_mode_stops_after_the_copy() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec("CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    src.exec("USE f; INSERT INTO f.t SELECT seq, REPEAT('x', seq % 100) FROM seq_1_to_5000")
        .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("f", "full", "src1", &dst, &["f"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_for("finished", Duration::from_secs(60), || {
        dm.subtask("f").is_some_and(|s| s["stage"] == "finished")
    })
    .await;
    assert_eq!(assert_same(&src, &dst, &["f"]).await, 5000);
}

/// Negative TIME values with one or two fraction digits, written during the incremental phase
/// (TiDB DM's adjust_gtid workload writes `-00:00:00.01`): the binlog decoder dm uses panicked
/// on them in debug builds and returned wrong times in release builds.
#[tokio::test(flavor = "multi_thread")]
async fn negative_fractional_times_in_the_binlog() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; CREATE TABLE s.t (c INT PRIMARY KEY, t1 TIME(1), t2 TIME(2), t4 TIME(4), t6 TIME(6))",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("tt", "all", "src1", &dst, &["s"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "tt", &src).await;
    src.exec(
        "INSERT INTO s.t VALUES
           (1, '-00:00:00.1', '-00:00:00.01', '-00:00:00.0001', '-00:00:00.000001'),
           (2, '-01:00:00.5', '-00:00:01.50', '-00:59:59.9999', '-838:59:59.000000'),
           (3, '838:59:59.9', '-12:00:00.99', '12:00:00.5', '-00:00:01.000001'),
           (4, '-838:59:59.0', '-838:59:59.00', '00:00:00', '00:00:00');
         UPDATE s.t SET t2 = '-00:00:00.99' WHERE c = 4",
    )
    .await;
    wait_caught_up(&dm, "tt", &src).await;
    assert_same(&src, &dst, &["s"]).await;
}

/// Invisible columns (MariaDB 10.3+, MySQL 8.0.23+): the copy names them (a `SELECT *` would
/// leave them out), row events carry them, and the target keeps them invisible with their
/// values. `assert_same` compares every column by name.
#[tokio::test(flavor = "multi_thread")]
async fn invisible_columns_are_copied_and_replicated() {
    let (src, dst) = (MariaDb::start(1), MariaDb::start(2));
    src.exec(
        "CREATE DATABASE s; USE s; \
         CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(10), h INT INVISIBLE DEFAULT 7, \
           k BIGINT INVISIBLE NULL); \
         INSERT INTO s.t (id, v, h, k) SELECT seq, CONCAT('v', seq), seq * 3, seq FROM seq_1_to_500",
    )
    .await;
    let dm = Dm::start();
    dm.create_source("src1", &src);
    let tf = dm.file("task.yaml", &task_yaml("iv", "all", "src1", &dst, &["s"]));
    dm.ctl_ok(&["start-task", tf.to_str().unwrap()]);
    wait_caught_up(&dm, "iv", &src).await;
    src.exec(
        "INSERT INTO s.t (id, v, h, k) VALUES (1000, 'new', 1, 2); INSERT INTO s.t VALUES (1001, 'dflt'); \
         UPDATE s.t SET h = h + 1000 WHERE id <= 10; DELETE FROM s.t WHERE id BETWEEN 20 AND 30; \
         ALTER TABLE s.t ADD COLUMN z INT INVISIBLE DEFAULT 5; UPDATE s.t SET z = id WHERE id > 490",
    )
    .await;
    wait_caught_up(&dm, "iv", &src).await;
    assert_same(&src, &dst, &["s"]).await;
    let invisible: i64 = dst
        .value("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 's' AND EXTRA LIKE '%INVISIBLE%'")
        .await;
    assert_eq!(invisible, 3);
}
