//! Secondary indexes built after the data: a table is created without its non-unique
//! secondary indexes, loaded, and then gets them in one `ALTER TABLE` (InnoDB builds an index
//! over existing rows by sorting, faster than maintaining it row by row). Primary and unique
//! keys stay, so the load checks exactly what it would check anyway.
//!
//! Nothing is remembered: the indexes to add are those in the source's `SHOW CREATE TABLE`
//! that the target's lacks, so a restart in between simply adds them later.

/// Index lines of a `SHOW CREATE TABLE` body that can wait for the data.
fn is_deferrable(line: &str) -> bool {
    let l = line.trim_start();
    ["KEY ", "INDEX ", "FULLTEXT ", "SPATIAL "]
        .iter()
        .any(|p| l.starts_with(p))
}

/// Splits `CREATE TABLE` text into (the statement without deferrable indexes, those index
/// definitions).
pub fn without_secondary_indexes(create: &str) -> (String, Vec<String>) {
    let (Some(open), Some(close)) = (create.find('('), create.rfind(')')) else {
        return (create.to_string(), vec![]);
    };
    let body = &create[open + 1..close];
    let mut kept = Vec::new();
    let mut deferred = Vec::new();
    for line in body.split('\n').map(|l| l.trim_end().trim_end_matches(',')) {
        if line.trim().is_empty() {
            continue;
        }
        if is_deferrable(line) {
            deferred.push(line.trim().to_string());
        } else {
            kept.push(line.to_string());
        }
    }
    if deferred.is_empty() {
        return (create.to_string(), vec![]);
    }
    let out = format!(
        "{}(\n{}\n{}",
        &create[..open],
        kept.join(",\n"),
        &create[close..]
    );
    (out, deferred)
}

/// `ALTER TABLE` clauses that add the indexes of `source_create` missing from
/// `target_create`.
pub fn missing_indexes(source_create: &str, target_create: &str) -> Vec<String> {
    let (_, want) = without_secondary_indexes(source_create);
    let (_, have) = without_secondary_indexes(target_create);
    want.into_iter()
        .filter(|i| !have.contains(i))
        .map(|i| format!("ADD {i}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL DEFAULT 0,\n  `u` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`u`),\n  KEY `k_1` (`k`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

    #[test]
    fn secondary_indexes_wait_and_come_back() {
        let (bare, deferred) = without_secondary_indexes(CREATE);
        assert_eq!(deferred, vec!["KEY `k_1` (`k`)"]);
        assert!(
            bare.contains("UNIQUE KEY `u` (`u`)\n) ENGINE=InnoDB"),
            "{bare}"
        );
        assert!(!bare.contains("k_1"));
        assert_eq!(missing_indexes(CREATE, &bare), vec!["ADD KEY `k_1` (`k`)"]);
        assert!(missing_indexes(CREATE, CREATE).is_empty());
    }
}
