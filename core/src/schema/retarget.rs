//! A statement on one table, written for another table with the source's text otherwise kept
//! byte for byte: only the table's name is replaced. Used for the ALTERs an online schema
//! change tool runs on its shadow table, applied to the real table at the swap; the text is
//! not re-rendered by the parser, so options the parser does not know, comments and string
//! literals (escapes and all) stay exactly as the source ran them.

use crate::db::quote_ident;
use crate::table::TableName;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

/// The table-name part of an `ALTER TABLE`, `CREATE INDEX ... ON` or `DROP INDEX ... ON`:
/// (table, byte range of its name in `sql`).
fn table_span(default_db: &str, sql: &str) -> Option<(TableName, usize, usize)> {
    let dialect = MySqlDialect {};
    let all = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    // Indexes into `all` of the tokens that are not whitespace or comments.
    let words: Vec<usize> = (0..all.len())
        .filter(|&i| !matches!(all[i].token, Token::Whitespace(_)))
        .collect();
    let word = |i: usize| match words.get(i).map(|&j| &all[j].token) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    };
    let is = |i: usize, k: &str| word(i).as_deref() == Some(k);
    // The name starts at word `start`.
    let start = match word(0)?.as_str() {
        "ALTER" => {
            let mut i = 1;
            while is(i, "ONLINE") || is(i, "IGNORE") {
                i += 1;
            }
            is(i, "TABLE").then_some(i + 1)?
        }
        "CREATE" | "DROP" => (1..6)
            .find(|&i| is(i, "ON"))
            .map(|i| i + 1)
            .filter(|_| (1..4).any(|i| is(i, "INDEX") || is(i, "KEY")))?,
        _ => return None,
    };
    let ident = |i: usize| match words.get(i).map(|&j| &all[j].token) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let first = ident(start)?;
    let dotted = words.get(start + 1).map(|&j| &all[j].token) == Some(&Token::Period);
    let (table, last) = match (dotted, ident(start + 2)) {
        (true, Some(t)) => (TableName::new(first, t), start + 2),
        _ => (TableName::new(default_db, first), start),
    };
    let from = offset(sql, all[words[start]].span.start)?;
    let to = match all.get(words[last] + 1) {
        Some(next) => offset(sql, next.span.start)?,
        None => sql.len(),
    };
    Some((table, from, to))
}

/// The byte offset of a tokenizer location (lines and columns from 1, columns in chars).
fn offset(sql: &str, at: Location) -> Option<usize> {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in sql.char_indices() {
        if line == at.line && col == at.column {
            return Some(i);
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line == at.line && col == at.column).then_some(sql.len())
}

/// The statement with its table replaced by `to` (written `schema`.`table`).
pub fn retarget(default_db: &str, sql: &str, to: &TableName) -> Option<String> {
    let (_, from, end) = table_span(default_db, sql)?;
    Some(format!(
        "{}{}.{}{}",
        &sql[..from],
        quote_ident(&to.schema),
        quote_ident(&to.table),
        &sql[end..]
    ))
}

/// ALTER TABLE statements on one table as one ALTER TABLE on `to` with all their changes, in
/// order (for a shard's coordination, which takes one statement per DDL). `None` if one is
/// not an ALTER TABLE.
pub fn combine_alters(statements: &[(&str, &str)], to: &TableName) -> Option<String> {
    let mut changes = Vec::with_capacity(statements.len());
    for (db, sql) in statements {
        let (_, _, end) = table_span(db, sql)?;
        let first = sql.split_whitespace().next()?;
        if !first.eq_ignore_ascii_case("ALTER") {
            return None;
        }
        let body = sql[end..].trim().trim_end_matches(';').trim();
        if !body.is_empty() {
            changes.push(body.to_string());
        }
    }
    Some(format!(
        "ALTER TABLE {}.{} {}",
        quote_ident(&to.schema),
        quote_ident(&to.table),
        changes.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> TableName {
        TableName::new(s, n)
    }

    #[test]
    fn only_the_table_name_changes() {
        let to = t("shop", "orders");
        assert_eq!(
            retarget(
                "x",
                "alter /* gh-ost */ table `shop`.`_orders_gho` add column c int comment 'a\\'b'",
                &to
            )
            .unwrap(),
            "alter /* gh-ost */ table `shop`.`orders` add column c int comment 'a\\'b'"
        );
        assert_eq!(
            retarget(
                "shop",
                "ALTER ONLINE TABLE _orders_new\n  ENGINE=InnoDB, ALGORITHM=INPLACE",
                &to
            )
            .unwrap(),
            "ALTER ONLINE TABLE `shop`.`orders`\n  ENGINE=InnoDB, ALGORITHM=INPLACE"
        );
        assert_eq!(
            retarget("shop", "CREATE UNIQUE INDEX u ON _orders_gho (a, b)", &to).unwrap(),
            "CREATE UNIQUE INDEX u ON `shop`.`orders` (a, b)"
        );
        assert_eq!(
            retarget("shop", "DROP INDEX u ON `_orders_gho`", &to).unwrap(),
            "DROP INDEX u ON `shop`.`orders`"
        );
        assert_eq!(
            retarget("shop", "ALTER TABLE `é`.`_ö_gho` ADD c INT", &t("é", "ö")).unwrap(),
            "ALTER TABLE `é`.`ö` ADD c INT"
        );
        assert_eq!(
            table_span("d", "alter table `a`.`_b_new` add x int").map(|(t, _, _)| t),
            Some(t("a", "_b_new"))
        );
        assert_eq!(retarget("d", "RENAME TABLE a TO b", &to), None);
    }

    #[test]
    fn alters_combine_in_order() {
        let to = t("s", "t");
        assert_eq!(
            combine_alters(
                &[
                    ("s", "ALTER TABLE _t_gho ADD COLUMN c INT;"),
                    ("s", "alter table `s`.`_t_gho` add index ic (c)"),
                ],
                &to
            )
            .unwrap(),
            "ALTER TABLE `s`.`t` ADD COLUMN c INT, add index ic (c)"
        );
        assert_eq!(
            combine_alters(&[("s", "CREATE INDEX i ON _t_gho (c)")], &to),
            None
        );
    }
}
