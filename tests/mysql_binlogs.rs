//! Binlog files written by real MySQL servers (5.1 to 9.x, `../shared/fixtures/mysql-binlogs`,
//! recorded: no MySQL server runs here) through dm's binlog reader: each file is decoded into
//! transactions as the server meant it, or refused with an error naming the file and what is
//! wrong (truncated, corrupt).

use dm_core::config::Flavor;
use dm_core::rules::TableFilter;
use dm_core::upstream::{BinlogReader, EventKind};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;

fn fixtures() -> PathBuf {
    common::fixtures("mysql-binlogs")
}

/// What dm read from one file.
#[derive(Debug, Default)]
struct Read {
    txns: usize,
    rows: usize,
    statements: Vec<String>,
    tables: Vec<String>,
    unsupported: Vec<String>,
    /// The GTID set after the last transaction.
    gtid: String,
    error: Option<String>,
    /// The file ends inside a transaction.
    cut: bool,
}

async fn read(file: &str) -> Read {
    let flavor = if file.starts_with("mariadb") {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    };
    let filter = TableFilter::everything();
    let mut reader =
        BinlogReader::from_files("recorded", flavor, vec![fixtures().join(file)], filter);
    let mut out = Read::default();
    loop {
        match reader.next_txn().await {
            Ok(Some(txn)) => {
                out.txns += 1;
                if let Some(g) = &txn.end.gtid {
                    out.gtid = g.to_string();
                }
                for ev in txn.events {
                    match ev.kind {
                        EventKind::Rows { table, rows, .. } => {
                            out.rows += rows.len();
                            let t = table.to_string();
                            if !out.tables.contains(&t) {
                                out.tables.push(t);
                            }
                        }
                        EventKind::Query { sql, .. } => out.statements.push(sql),
                        EventKind::Unsupported { what, .. } => out.unsupported.push(what),
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out.cut = reader.mid_transaction();
    out
}

async fn read_all() -> BTreeMap<String, Read> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("the mysql-binlogs fixtures")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    names.sort();
    let mut all = BTreeMap::new();
    for n in names {
        let r = read(&n).await;
        all.insert(n, r);
    }
    all
}

#[tokio::test]
async fn every_recorded_mysql_binlog_is_decoded_or_refused_with_the_reason() {
    let all = read_all().await;
    for (name, r) in &all {
        eprintln!(
            "{name}: {} txns, {} rows, {} statements, tables {:?}, unsupported {:?}, gtid {:?}, cut {}, error {:?}",
            r.txns, r.rows, r.statements.len(), r.tables, r.unsupported, r.gtid, r.cut, r.error
        );
    }
    let get = |n: &str| {
        all.get(n)
            .unwrap_or_else(|| panic!("{n} is not among the fixtures"))
    };
    // Refused, each naming the file and offset and what is wrong.
    for (file, says) in [
        (
            "binlog_truncated_event.000001",
            "binlog_truncated_event.000001:4: the file ends inside an event",
        ),
        (
            "binlog_truncated_prev_gtid_event.000001",
            "binlog_truncated_prev_gtid_event.000001:120: the file ends inside an event",
        ),
        ("corrupt-relay-bin.000624", "cannot decode event type 2"),
        // MySQL 5.1's relay log with a 5.1-era XID layout.
        ("ver_5_1-wl2325_r.001", "cannot decode event type 16"),
    ] {
        let e = get(file).error.as_deref().unwrap_or_default();
        assert!(e.contains(says), "{file}: {e}");
    }
    // What the reader refuses event by event pauses a task with its reason.
    assert_eq!(get("bug40482-bin.000001").unsupported, ["INCIDENT event"]);
    assert_eq!(get("ver_5_1_23.001").unsupported.len(), 3);
    // MySQL 5.1.0-5.1.15's pre-GA rows events, in a file that stops inside the transaction.
    assert!(get("ver_5_1-wl2325_s.001").cut);
    // Everything else reads whole.
    for (name, r) in &all {
        let refused = r.error.is_some() || !r.unsupported.is_empty() || r.cut;
        let expected = [
            "binlog_truncated_event.000001",
            "binlog_truncated_prev_gtid_event.000001",
            "corrupt-relay-bin.000624",
            "ver_5_1-wl2325_r.001",
            "bug40482-bin.000001",
            "ver_5_1_23.001",
            "ver_trunk_row_v2.001",
            "ver_5_1-wl2325_s.001",
        ];
        assert_eq!(refused, expected.contains(&name.as_str()), "{name}: {r:?}");
    }

    // A compressed transaction (binlog_transaction_compression=ON, MySQL 8.0.20+): unpacked.
    let c = get("transaction_compression.000001");
    assert_eq!((c.txns, c.rows), (1, 1), "{c:?}");
    assert_eq!(c.tables, ["`test`.`tb1`"]);
    // GTIDs, with a MySQL 8.4 tag, and of two servers.
    assert_eq!(
        get("binlog_transaction_with_GTID.000001").gtid,
        "006c2cf2-b1ea-11e4-9057-8c705a3d3e78:1-3"
    );
    let tagged = get("binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(tagged.gtid, "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3");
    assert_eq!(
        (tagged.rows, tagged.tables.as_slice()),
        (1, &["`test`.`orders`".to_string()][..])
    );
    assert_eq!(
        get("rpl_atomic_ddl_rollback_table.000001").gtid,
        "7f6766f1-daa1-11e7-86f3-340286faf52d:1,aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:1"
    );
    assert_eq!(get("mariadb-bin.000001").gtid, "0-1-2");
    // JSON rows and partial JSON updates (PARTIAL_UPDATE_ROWS), invisible columns, ENUM/SET,
    // BIT, VECTOR, full and partial row images.
    for (file, rows) in [
        ("json.binlog.000001", 18),
        ("json-opaque.binlog", 8),
        ("binlog-invisible-columns.000001", 3),
        ("mysql-enum-string-set.000001", 3),
        ("mysql_type_bit.000001", 1),
        ("vector.binlog", 10),
        ("update-full-row.binlog", 7),
        ("update-partial-row.binlog", 7),
        ("write-partial-row.binlog", 7),
    ] {
        assert_eq!(get(file).rows, rows, "{file}");
    }
}

/// MySQL's partial JSON updates (`json.binlog.000001`: `JSON_SET(json_col, '$.age', ...)`
/// logged as diffs under `binlog_row_value_options=PARTIAL_JSON`) applied to the document the
/// row had in its previous image in the file: the new document, printed as MySQL prints it.
#[tokio::test]
async fn partial_json_updates_apply_to_the_document_before_them() {
    use dm_core::datum::Datum;
    let mut reader = BinlogReader::from_files(
        "recorded",
        Flavor::Mysql,
        vec![fixtures().join("json.binlog.000001")],
        TableFilter::everything(),
    );
    let json = dm_core::table::Column {
        name: "json_col".into(),
        data_type: "json".into(),
        unsigned: false,
        nullable: true,
        generated: false,
        members: vec![],
    };
    let mut docs = BTreeMap::new();
    let mut updated = Vec::new();
    while let Some(txn) = reader.next_txn().await.unwrap() {
        for ev in txn.events {
            let EventKind::Rows { rows, .. } = ev.kind else {
                continue;
            };
            for (before, after) in rows {
                let Some(after) = after else { continue };
                let id = format!("{:?}", before.as_ref().unwrap_or(&after)[0]);
                // Full images hold (id, json_col, ...); the partial ones (binlog_row_image
                // MINIMAL, which dm otherwise refuses) only the changed columns, the diff first.
                let diff = after
                    .iter()
                    .flatten()
                    .find(|v| Datum::from_binlog(&json, (*v).clone()).is_err())
                    .cloned();
                let Some(value) = diff else {
                    docs.insert(id, after[1].clone().expect("json_col"));
                    continue;
                };
                // A diff: it needs the document it changes.
                assert!(Datum::from_binlog_after(&json, value.clone(), None).is_err());
                let Datum::Bytes(text) =
                    Datum::from_binlog_after(&json, value, docs.get(&id)).unwrap()
                else {
                    panic!("JSON is text")
                };
                updated.push(String::from_utf8(text).unwrap());
            }
        }
    }
    assert_eq!(
        updated,
        [
            r#"{"age": 26, "data": "xxxxxxxxxx", "name": "Joe"}"#,
            r#"{"age": 34, "data": "yyyyyyyyyy", "name": "Sue"}"#,
            r#"{"age": 42, "data": "zzzzzzzzzz", "name": "Pete"}"#,
            r#"{"age": 26, "data": "xxxxxxxxxx", "name": "Joe"}"#,
            r#"{"age": 34, "data": "yyyyyyyyyy", "name": "Sue"}"#,
            r#"{"age": 42, "data": "zzzzzzzzzz", "name": "Pete"}"#,
        ]
    );
}

/// dm decodes row images itself (`upstream::row_image`, each value with mysql_common's value
/// decoder): on every rows event of every recorded binlog, compressed transactions included,
/// its images are those mysql_common's own row decoder gives, or both refuse the event; with
/// the codecs read for the event and with those a `CodecCache` keeps per table id.
#[test]
fn row_images_are_those_of_mysql_commons_row_decoder() {
    use dm_core::upstream::row_image::CodecCache;
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{Event, EventData, RowsEventData};
    use mysql_common::binlog::EventStreamReader;

    /// Compares the images of `ev`, if it is a rows event: counts it (and whether it is a
    /// partial JSON update).
    fn compare(
        reader: &EventStreamReader,
        cache: &mut CodecCache,
        ev: &Event,
        file: &str,
        seen: &mut [usize; 2],
    ) {
        let Ok(Some(EventData::RowsEvent(re))) = ev.read_data() else {
            return;
        };
        let Some(tme) = reader.get_tme(re.table_id()) else {
            return;
        };
        fn image(mut row: mysql_common::binlog::row::BinlogRow) -> dm_core::upstream::RowImage {
            (0..row.len())
                .map(|i| row.take(i).map(|v| v.into_owned()))
                .collect()
        }
        let theirs: std::io::Result<Vec<_>> = re
            .rows(tme)
            .map(|r| r.map(|(b, a)| (b.map(image), a.map(image))))
            .collect();
        let at = ev.header().log_pos();
        let ours = dm_core::upstream::row_image::decode(&re, tme);
        let cached = cache.decode(&re, tme);
        match (theirs, ours, cached) {
            (Ok(theirs), Ok(ours), Ok(cached)) => {
                assert_eq!(ours, theirs, "{file}, the event ending at {at}");
                assert_eq!(
                    cached, theirs,
                    "{file}, the event ending at {at}, cached codecs"
                );
            }
            (Err(_), Err(_), Err(_)) => {}
            (theirs, ours, cached) => {
                panic!("{file} at {at}: mysql_common {theirs:?}, dm {ours:?}, cached {cached:?}")
            }
        }
        seen[0] += 1;
        if matches!(re, RowsEventData::PartialUpdateRowsEvent(_)) {
            seen[1] += 1;
        }
    }

    let (mut seen, mut compressed, mut files) = ([0, 0], 0, 0);
    // One for all the files: their table ids come back with other table maps (as a source's
    // do after a restart), which must not be decoded with the codecs of the earlier ones.
    let mut cache = CodecCache::default();
    for entry in std::fs::read_dir(fixtures()).expect("the mysql-binlogs fixtures") {
        let path = entry.expect("an entry").path();
        let bytes = std::fs::read(&path).expect("a fixture");
        let Some(mut data) = bytes.strip_prefix(b"\xfebin".as_slice()) else {
            continue;
        };
        let file = path.display().to_string();
        files += 1;
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        // Truncated and corrupt fixtures end the file at their bad event.
        while let Ok(Some(ev)) = reader.read(&mut data) {
            compare(&reader, &mut cache, &ev, &file, &mut seen);
            let Ok(Some(EventData::TransactionPayloadEvent(p))) = ev.read_data() else {
                continue;
            };
            let Ok(mut inner) = p.decompressed() else {
                continue;
            };
            let mut payload = EventStreamReader::new(BinlogVersion::Version4);
            let mut unpacked = Vec::new();
            while let Ok(Some(e)) = payload.read_decompressed(&mut inner) {
                unpacked.push(e);
            }
            let before = seen[0];
            for e in &unpacked {
                compare(&payload, &mut cache, e, &file, &mut seen);
            }
            compressed += seen[0] - before;
        }
    }
    let [events, partial] = seen;
    assert!(
        files >= 40 && events >= 50 && partial > 0 && compressed > 0,
        "{files} files, {events} rows events compared ({partial} partial JSON updates, \
         {compressed} in compressed transactions)"
    );
}

/// MySQL has no BINLOG_GTID_POS: the GTID set at a position of one of its files is the
/// file's Previous_gtids event plus the GTIDs before the position (`GtidScan`, what a task
/// started by file and position on MySQL resumes and fails over by). At every transaction
/// end dm's reader finds in the recorded files, the scan's set is the file's Previous_gtids
/// (decoded here on their own) plus the GTIDs the reader counted: the same file read two
/// ways (event positions, transaction boundaries), from servers with plain and tagged GTIDs
/// and compressed transactions.
#[tokio::test]
async fn the_gtid_set_at_a_mysql_position_is_previous_gtids_and_those_before_it() {
    use dm_core::upstream::{GtidScan, GtidSet};
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{Event, EventData};
    use mysql_common::binlog::EventStreamReader;

    /// Every (server, transaction number) of a set: the same set however its intervals are cut.
    fn members(set: &GtidSet) -> Vec<(String, u64)> {
        let GtidSet::Mysql(m) = set else {
            panic!("not a MySQL set: {set:?}")
        };
        let mut all: Vec<(String, u64)> = m
            .iter()
            .flat_map(|(k, ivs)| {
                ivs.iter()
                    .flat_map(move |&(a, b)| (a..b).map(move |g| (k.clone(), g)))
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }
    fn uuid(b: [u8; 16]) -> String {
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    let (mut files, mut positions, mut with_previous) = (0, 0, 0);
    for entry in std::fs::read_dir(fixtures()).expect("the mysql-binlogs fixtures") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("mariadb") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("a fixture");
        let Some(mut data) = bytes.strip_prefix(b"\xfebin".as_slice()) else {
            continue;
        };
        let mut stream = EventStreamReader::new(BinlogVersion::Version4);
        let mut events: Vec<Event> = Vec::new();
        while let Ok(Some(ev)) = stream.read(&mut data) {
            events.push(ev);
        }
        // The Previous_gtids event, as text (`uuid[:tag]:a-b`).
        let Some(previous) = events.iter().find_map(|ev| match ev.read_data() {
            Ok(Some(EventData::PreviousGtidsEvent(p))) => Some(
                p.sids()
                    .iter()
                    .map(|s| {
                        let tag = s.tag().map(|t| format!(":{t}")).unwrap_or_default();
                        let ivs: Vec<String> = s
                            .intervals()
                            .iter()
                            .map(|iv| format!("{}-{}", iv.start(), iv.end() - 1))
                            .collect();
                        format!("{}{tag}:{}", uuid(s.uuid()), ivs.join(":"))
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }) else {
            continue;
        };
        let previous = GtidSet::parse(Flavor::Mysql, &previous).expect("Previous_gtids as text");
        let mut reader = BinlogReader::from_files(
            "recorded",
            Flavor::Mysql,
            vec![path.clone()],
            TableFilter::everything(),
        );
        let mut checked = 0;
        while let Ok(Some(txn)) = reader.next_txn().await {
            let Some(read) = &txn.end.gtid else { continue };
            let mut want = members(&previous);
            want.extend(members(read));
            want.sort();
            want.dedup();
            let at = txn.end.binlog.pos;
            let mut scan = GtidScan::new(at);
            for ev in &events {
                if !scan.feed(ev).unwrap() {
                    break;
                }
            }
            let got = scan.finish().expect("a set: the file has Previous_gtids");
            assert_eq!(members(&got), want, "{name} at {at}: {got}");
            checked += 1;
        }
        files += 1;
        positions += checked;
        with_previous += usize::from(!members(&previous).is_empty());
    }
    assert!(
        files >= 5 && positions >= 20,
        "{files} files, {positions} positions"
    );
    assert!(with_previous >= 1, "no file starts with earlier GTIDs");
}
