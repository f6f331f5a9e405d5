//! TiDB DM's task and source files, read as they are: fields dm takes under another name are
//! renamed, fields that have no effect in dm are left out, each with a warning that says why.
//! Done on the text, line for line (a left-out block becomes comment lines), so every other
//! mistake is still reported at its own line by the strict parser that follows.

/// What to do with a field of a DM file.
enum Action {
    /// Take it under this name.
    Rename(&'static str),
    /// Leave it (and its block) out: it has no effect in dm, for this reason.
    Ignore(&'static str),
    /// An empty value (`''`, `[]`) is TiDB DM's "not set": left out; any other value stays.
    EmptyIsUnset,
    /// Not supported, and leaving it out would change the data: the file is refused.
    Refuse(&'static str),
}

/// (path, action): a path is the keys from the top, `[]` for an item of a list, `*` for any
/// key (the name of a `mydumpers`/`syncers` entry).
const TASK: &[(&str, Action)] = &[
    ("black-white-list", Action::Rename("block-allow-list")),
    ("mysql-instances.[].column-mapping-rules", Action::Refuse("column mapping (TiDB DM's deprecated `column-mappings`) is not supported: to tag merged rows with their shard use the `extract-table`/`extract-schema`/`extract-source` columns of `routes`, to compute a column use a row filter plugin")),
    ("mysql-instances.[].black-white-list", Action::Rename("block-allow-list")),
    ("is-sharding", Action::Ignore("TiDB DM's deprecated switch; dm merges shards by `routes` and coordinates their DDL with `shard-mode` (written from `is-sharding: true` as `shard-mode: pessimistic`)")),
    ("heartbeat-update-interval", Action::Ignore("dm measures lag from the binlog events' timestamps, without a heartbeat table (TiDB DM deprecates it too)")),
    ("heartbeat-report-interval", Action::Ignore("dm measures lag from the binlog events' timestamps, without a heartbeat table (TiDB DM deprecates it too)")),
    ("enable-heartbeat", Action::Ignore("dm measures lag from the binlog events' timestamps, without a heartbeat table (TiDB DM deprecates it too)")),
    ("timezone", Action::Ignore("dm copies DATETIME and TIMESTAMP values exactly (TIMESTAMP in UTC) and replays each statement in its own time zone from the binlog, so no task time zone is needed")),
    ("collation_compatible", Action::Ignore("dm creates tables with the source's definitions and always acts as `loose`: a statement's MySQL 8 utf8mb4 collation the target lacks becomes the target's default utf8mb4 collation; check-task reports collations the target lacks")),
    ("clean-dump-file", Action::Ignore("dm never deletes dump files: task-mode dump writes them for you to keep, the full phase streams rows without files")),
    ("loaders.*.pool-size", Action::Ignore("dm imports a dump's files one after the other, each in one transaction")),
    ("loaders.*.import-mode", Action::Ignore("dm imports a dump with SQL statements (TiDB's physical import does not apply)")),
    ("loaders.*.on-duplicate", Action::Ignore("dm imports a dump into the target as it is: rows the target already has are an error")),
    ("loaders.*.on-duplicate-logical", Action::Ignore("dm imports a dump into the target as it is: rows the target already has are an error")),
    ("loaders.*.on-duplicate-physical", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.sorting-dir-physical", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.disk-quota-physical", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.checksum-physical", Action::Ignore("TiDB's physical import does not apply; `dm ctl verify` compares source and target")),
    ("loaders.*.analyze", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.range-concurrency", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.compress-kv-pairs", Action::Ignore("TiDB's physical import does not apply")),
    ("loaders.*.pd-addr", Action::Ignore("TiDB's physical import does not apply")),
    ("remove-meta", Action::Ignore("TiDB DM's deprecated field; use `dm ctl start-task --remove-meta`")),
    ("enable-ansi-quotes", Action::Ignore("dm replays each statement under the source's own sql_mode, ANSI_QUOTES included")),
    ("mysql-instances.[].loader-thread", Action::Ignore("dm imports a dump's files one after the other, each in one transaction; the full phase streams rows without files")),
    ("mysql-instances.[].mydumper-thread", Action::Ignore("TiDB DM's deprecated field; set `threads` in the instance's `mydumpers` entry")),
    ("mysql-instances.[].loader", Action::Ignore("inline loader settings: dm takes the dump directory from the `loaders` entry named by `loader-config-name`")),
    ("mysql-instances.[].mydumper", Action::Ignore("inline copier settings: dm takes them from the `mydumpers` entry named by `mydumper-config-name`")),
    ("mysql-instances.[].syncer", Action::Ignore("inline apply settings: dm takes them from the `syncers` entry named by `syncer-config-name`")),
    ("meta-dir", Action::Ignore("dm keeps no dump metadata files")),
    ("mysql-instances.[].syncer-thread", Action::Ignore("TiDB DM's deprecated field; set `worker-count` in the instance's `syncers` entry")),
    ("mydumpers.*.chunk-filesize", Action::Ignore("dm splits tables (and task-mode dump's files) by `rows`, not by size")),
    ("mydumpers.*.skip-tz-utc", Action::Ignore("dm reads TIMESTAMP values in UTC and writes them back exactly")),
    ("mydumpers.*.statement-size", Action::Ignore("dm bounds its statements by the target's max_allowed_packet (task-mode dump: INSERTs of about 1 MB, dumpling's default)")),
    ("mydumpers.*.mydumper-path", Action::Ignore("dm does not run mydumper")),
    ("syncers.*.enable-ansi-quotes", Action::Ignore("dm replays each statement under the source's own sql_mode, ANSI_QUOTES included")),
    ("syncers.*.multiple-rows", Action::Ignore("dm always batches row changes into multi-row statements where the keys allow")),
    ("syncers.*.queue-size", Action::Ignore("dm bounds its queues by bytes (docs/architecture.md)")),
    ("syncers.*.max-retry", Action::Ignore("dm retries transient errors until they pass, with backoff")),
    ("syncers.*.auto-fix-gtid", Action::Ignore("TiDB DM's deprecated field")),
    ("syncers.*.disable-detect", Action::Ignore("TiDB DM's deprecated field")),
    ("target-database.max-allowed-packet", Action::Ignore("TiDB DM's deprecated field; dm reads the target's max_allowed_packet")),
    ("target-database.security.ssl-ca", Action::EmptyIsUnset),
    ("target-database.security.ssl-cert", Action::EmptyIsUnset),
    ("target-database.security.ssl-key", Action::EmptyIsUnset),
    ("target-database.security.ssl-ca-bytes", Action::EmptyIsUnset),
    ("target-database.security.ssl-cert-bytes", Action::EmptyIsUnset),
    ("target-database.security.ssl-key-bytes", Action::EmptyIsUnset),
    ("target-database.security.ssl-ca-base64", Action::EmptyIsUnset),
    ("target-database.security.ssl-cert-base64", Action::EmptyIsUnset),
    ("target-database.security.ssl-key-base64", Action::EmptyIsUnset),
    ("target-database.security.cert-allowed-cn", Action::Ignore("it checks the names of TiDB DM's own components, not of a database server")),
    ("auto-fix-gtid", Action::Ignore("TiDB DM's deprecated field")),
    ("online-ddl-scheme", Action::Ignore("TiDB DM's deprecated field: `online-ddl` (on by default) handles gh-ost and pt-online-schema-change both")),
    ("strict-optimistic-shard-mode", Action::Ignore("dm's optimistic mode already pauses on any change it cannot reconcile")),
    ("experimental", Action::Ignore("TiDB DM's experimental switches")),
    ("shard-mode", Action::EmptyIsUnset),
    ("validators", Action::Ignore("dm validates with `dm ctl validation start <task>` (continuous) and `dm ctl verify`")),
    ("mysql-instances.[].validator-config-name", Action::Ignore("dm validates with `dm ctl validation start <task>` (continuous) and `dm ctl verify`")),
];

const SOURCE: &[(&str, Action)] = &[
    (
        "checker",
        Action::Ignore("dm's worker checks its subtasks itself and restarts them with backoff"),
    ),
    (
        "relay-binlog-gtid",
        Action::Ignore(
            "dm's relay starts at `relay-binlog-name` or where the first subtask needs it",
        ),
    ),
    (
        "enable",
        Action::Ignore("a source dm knows is enabled; `dm ctl operate-source stop` removes it"),
    ),
    (
        "case-sensitive",
        Action::Ignore(
            "dm takes case-sensitive from the task file (TiDB DM uses either); set it there",
        ),
    ),
    (
        "tracer",
        Action::Ignore("TiDB DM's deprecated tracing service"),
    ),
    (
        "from.max-allowed-packet",
        Action::Ignore("TiDB DM's deprecated field"),
    ),
    (
        "from.security.cert-allowed-cn",
        Action::Ignore("it checks the names of TiDB DM's own components, not of a database server"),
    ),
    ("flavor", Action::EmptyIsUnset),
    ("from.security.ssl-ca", Action::EmptyIsUnset),
    ("from.security.ssl-cert", Action::EmptyIsUnset),
    ("from.security.ssl-key", Action::EmptyIsUnset),
    ("from.security.ssl-ca-bytes", Action::EmptyIsUnset),
    ("from.security.ssl-cert-bytes", Action::EmptyIsUnset),
    ("from.security.ssl-key-bytes", Action::EmptyIsUnset),
    ("from.security.ssl-ca-base64", Action::EmptyIsUnset),
    ("from.security.ssl-cert-base64", Action::EmptyIsUnset),
    ("from.security.ssl-key-base64", Action::EmptyIsUnset),
    (
        "charset",
        Action::Ignore(
            "dm reads the source with utf8mb4 and each value in its column's character set",
        ),
    ),
    (
        "meta-dir",
        Action::Ignore("dm keeps no dump metadata files"),
    ),
    (
        "auto-fix-gtid",
        Action::Ignore("TiDB DM's deprecated field"),
    ),
    ("relay-binlog-name", Action::EmptyIsUnset),
];

/// A file's text with DM's fields taken care of, and what was done.
pub struct Compat {
    pub text: String,
    pub warnings: Vec<String>,
    /// A field dm refuses: (line, message).
    pub refused: Option<(usize, String)>,
}

fn matches(pattern: &str, path: &[String]) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// The key of a block-style YAML line (`  key: value`, `- key: value`): (indent of the key,
/// whether the line starts a list item, key).
fn key_of(line: &str) -> Option<(usize, bool, &str)> {
    let trimmed = line.trim_start();
    let mut indent = line.len() - trimmed.len();
    let (item, rest) = match trimmed.strip_prefix("- ") {
        Some(r) => {
            indent += 2 + (r.len() - r.trim_start().len());
            (true, r.trim_start())
        }
        None => (false, trimmed),
    };
    if rest.starts_with('#') {
        return None;
    }
    let end = rest.find(':')?;
    let key = rest[..end].trim_matches(|c| c == '"' || c == '\'');
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let after = &rest[end + 1..];
    (valid && (after.is_empty() || after.starts_with(' '))).then_some((indent, item, key))
}

fn apply(file: &str, text: &str, rules: &[(&str, Action)], task: bool) -> Compat {
    let mut out: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut refused = None;
    // (indent, key) of the enclosing keys; a list item adds "[]".
    let mut stack: Vec<(usize, String)> = Vec::new();
    // Lines at an indent above this are inside a left-out block.
    let mut skipping: Option<usize> = None;
    let mut shard_mode_set = text.lines().any(|l| l.starts_with("shard-mode:"));
    for (n, line) in text.lines().enumerate() {
        let blank = line.trim().is_empty() || line.trim_start().starts_with('#');
        if let Some(indent) = skipping {
            let this = line.len() - line.trim_start().len();
            if blank || this > indent {
                out.push(format!("# {line}"));
                continue;
            }
            skipping = None;
        }
        if line.trim() == "-" {
            // A list item whose keys start on the next line.
            let dash = line.len() - line.trim_start().len();
            while stack.last().is_some_and(|(i, _)| *i >= dash) {
                stack.pop();
            }
            stack.push((dash, "[]".into()));
            out.push(line.to_string());
            continue;
        }
        let Some((indent, item, key)) = key_of(line) else {
            out.push(line.to_string());
            continue;
        };
        // A new list item also ends the previous item.
        let floor = if item { indent - 1 } else { indent };
        while stack.last().is_some_and(|(i, _)| *i >= floor) {
            stack.pop();
        }
        if item {
            stack.push((indent.saturating_sub(1), "[]".into()));
        }
        let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
        path.push(key.to_string());
        stack.push((indent, key.to_string()));
        let at = format!("{file}:{}", n + 1);
        let rule = rules.iter().find(|(p, _)| matches(p, &path));
        match rule {
            Some((_, Action::Rename(to))) => {
                warnings.push(format!(
                    "{at}: `{}` is TiDB DM's old name of `{to}`; taken as `{to}`",
                    path.join(".")
                ));
                out.push(line.replacen(key, to, 1));
                if let Some(last) = stack.last_mut() {
                    last.1 = to.to_string();
                }
            }
            Some((_, Action::Ignore(why))) => {
                let value = line.split_once(':').map_or("", |(_, v)| v.trim());
                if task && key == "is-sharding" && value == "true" && !shard_mode_set {
                    shard_mode_set = true;
                    warnings.push(format!("{at}: `is-sharding: true` is TiDB DM's deprecated switch; taken as `shard-mode: pessimistic`"));
                    out.push("shard-mode: pessimistic".into());
                    continue;
                }
                warnings.push(format!(
                    "{at}: `{}` has no effect in dm: {why}",
                    path.join(".")
                ));
                if item {
                    // The item's first key: the item stays open for its other keys.
                    out.push(format!(
                        "{} # {}",
                        line[..indent].trim_end(),
                        &line[indent..]
                    ));
                } else {
                    out.push(format!("# {line}"));
                }
                skipping = Some(indent);
            }
            Some((_, Action::Refuse(why))) => {
                refused.get_or_insert((n + 1, format!("{}: {why}", path.join("."))));
                out.push(line.to_string());
            }
            Some((_, Action::EmptyIsUnset)) => {
                let value = line.split_once(':').map_or("", |(_, v)| v.trim());
                if matches!(value, "''" | "\"\"" | "[]") {
                    out.push(format!("# {line}"));
                } else {
                    out.push(line.to_string());
                }
            }
            None => out.push(line.to_string()),
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    Compat {
        text,
        warnings,
        refused,
    }
}

/// A task file as dm reads it.
pub fn task(file: &str, text: &str) -> Compat {
    apply(file, text, TASK, true)
}

/// A source file as dm reads it.
pub fn source(file: &str, text: &str) -> Compat {
    apply(file, text, SOURCE, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_fields_are_renamed_or_left_out_line_for_line() {
        let text = "name: t\nis-sharding: true\nheartbeat-update-interval: 1\nmysql-instances:\n  - source-id: s1\n    black-white-list: bw\n    mydumper-thread: 4\nblack-white-list:\n  bw:\n    do-dbs: [a]\nmydumpers:\n  global:\n    threads: 4\n    extra-args: \"--where x\"\n    chunk-filesize: 64\nloaders:\n  global:\n    pool-size: 16\n    dir: ./dumped\n";
        let c = task("task.yaml", text);
        assert_eq!(c.text.lines().count(), text.lines().count(), "{}", c.text);
        let lines: Vec<&str> = c.text.lines().collect();
        assert_eq!(lines[1], "shard-mode: pessimistic");
        assert_eq!(lines[2], "# heartbeat-update-interval: 1");
        assert_eq!(lines[5], "    block-allow-list: bw");
        assert_eq!(lines[6], "#     mydumper-thread: 4");
        assert_eq!(lines[7], "block-allow-list:");
        assert_eq!(lines[12], "    threads: 4");
        // extra-args is read by dm (its --where); chunk-filesize left out.
        assert_eq!(lines[13], "    extra-args: \"--where x\"");
        assert!(lines[14].starts_with('#'));
        // loaders: its dir is read (task-mode load), pool-size left out.
        assert_eq!(lines[15], "loaders:");
        assert!(
            lines[17].starts_with('#') && lines[18] == "    dir: ./dumped",
            "{}",
            c.text
        );
        assert!(c
            .warnings
            .iter()
            .any(|w| w.starts_with("task.yaml:3:") && w.contains("heartbeat")));
        assert_eq!(c.warnings.len(), 7, "{:?}", c.warnings);
    }

    #[test]
    fn column_mappings_are_refused_with_what_to_use() {
        let text = "name: t\nmysql-instances:\n  -\n    source-id: s1\n    column-mapping-rules: [\"m\"]\n";
        let (line, message) = task("task.yaml", text).refused.unwrap();
        assert_eq!(line, 5);
        assert!(message.contains("extract-table"), "{message}");
    }

    #[test]
    fn a_file_without_dm_fields_is_unchanged() {
        let text = "source-id: s1\nfrom:\n  host: h\n  port: 3306\n";
        let c = source("source.yaml", text);
        assert_eq!(c.text, text);
        assert!(c.warnings.is_empty());
    }
}
