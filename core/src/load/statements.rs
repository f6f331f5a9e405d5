//! The statements of a dump's SQL file (mydumper's, dumpling's), as bytes: values are written
//! raw (`SET NAMES binary`), so a file is not text. Statements end at a `;` outside quotes,
//! backquotes and comments.

/// Splits `sql` into statements (without their `;`), skipping empty ones.
pub fn split(sql: &[u8]) -> Vec<&[u8]> {
    let mut out = vec![];
    let (mut start, mut i) = (0, 0);
    while i < sql.len() {
        match sql[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < sql.len() {
                    if sql[i] == b'\\' && q != b'`' {
                        i += 2;
                        continue;
                    }
                    if sql[i] == q {
                        // A doubled quote is one quote character.
                        if sql.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < sql.len() && !(sql[i] == b'*' && sql[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'-' if sql.get(i + 1) == Some(&b'-')
                && sql.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                while i < sql.len() && sql[i] != b'\n' {
                    i += 1;
                }
            }
            b'#' => {
                while i < sql.len() && sql[i] != b'\n' {
                    i += 1;
                }
            }
            b';' => {
                push(&mut out, &sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(&mut out, &sql[start.min(sql.len())..]);
    out
}

fn push<'a>(out: &mut Vec<&'a [u8]>, stmt: &'a [u8]) {
    if !stmt.iter().all(|c| c.is_ascii_whitespace()) {
        out.push(stmt);
    }
}

/// Session variables a dump file may set (the character set its bytes are in, the time zone
/// of its TIMESTAMPs, checks), besides user variables.
const SESSION_SETTINGS: &[&str] = &[
    "names",
    "character",
    "character_set_client",
    "character_set_results",
    "character_set_connection",
    "collation_connection",
    "time_zone",
    "foreign_key_checks",
    "unique_checks",
    "sql_mode",
    "sql_notes",
];

/// Parts of `text` between commas outside quotes and parentheses.
fn top_level_parts(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut depth, mut quote) = (vec![], 0, 0i32, None);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A `SET` of session settings, as dump files begin (`/*!40101 SET NAMES binary*/`): the
/// only statements of a data file besides its INSERTs that dm runs. Anything else (another
/// statement, a global variable, inside an executable comment or not) is named in the error.
pub fn check_session_setting(stmt: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(stmt);
    let mut text = text.trim();
    if let Some(inner) = text.strip_prefix("/*!") {
        text = inner
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_end()
            .trim_end_matches("*/")
            .trim();
    }
    let shown = || text.chars().take(60).collect::<String>();
    let Some(rest) = text
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("SET "))
        .map(|_| &text[4..])
    else {
        return Err(format!("`{}` is neither an INSERT nor a SET", shown()));
    };
    for part in top_level_parts(rest) {
        let p = part.trim().to_ascii_lowercase();
        let p = ["@@session.", "@@local.", "session ", "local "]
            .iter()
            .find_map(|pre| p.strip_prefix(pre))
            .unwrap_or(&p)
            .trim_start();
        if p.starts_with('@') && !p.starts_with("@@") {
            continue;
        }
        let p = p.strip_prefix("@@").unwrap_or(p);
        let name: String = p
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !SESSION_SETTINGS.contains(&name.as_str()) {
            return Err(format!(
                "`{}` sets `{name}`, which is not a session setting of a dump",
                shown()
            ));
        }
    }
    Ok(())
}

/// An `INSERT [IGNORE] INTO <table> ...` with the table named `target` (a quoted, qualified
/// name) instead; `None` for any other statement.
pub fn retarget_insert(stmt: &[u8], target: &str) -> Option<Vec<u8>> {
    let text_start = stmt.iter().position(|c| !c.is_ascii_whitespace())?;
    let mut i = text_start;
    let word = |i: &mut usize| -> Option<String> {
        while *i < stmt.len() && stmt[*i].is_ascii_whitespace() {
            *i += 1;
        }
        let s = *i;
        while *i < stmt.len() && stmt[*i].is_ascii_alphabetic() {
            *i += 1;
        }
        (*i > s).then(|| String::from_utf8_lossy(&stmt[s..*i]).to_ascii_uppercase())
    };
    if word(&mut i)? != "INSERT" {
        return None;
    }
    let mut w = word(&mut i)?;
    if w == "IGNORE" {
        w = word(&mut i)?;
    }
    if w != "INTO" {
        return None;
    }
    while i < stmt.len() && stmt[i].is_ascii_whitespace() {
        i += 1;
    }
    let name_start = i;
    // `a` or `a`.`b` (backquoted, as the dump tools write them), or a plain word.
    loop {
        if stmt.get(i) == Some(&b'`') {
            i += 1;
            while i < stmt.len() {
                if stmt[i] == b'`' {
                    if stmt.get(i + 1) == Some(&b'`') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < stmt.len()
                && (stmt[i].is_ascii_alphanumeric() || stmt[i] == b'_' || stmt[i] == b'$')
            {
                i += 1;
            }
        }
        if stmt.get(i) == Some(&b'.') {
            i += 1;
            continue;
        }
        break;
    }
    if i == name_start {
        return None;
    }
    let mut out = stmt[..name_start].to_vec();
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(&stmt[i..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let sql = b"/*!40101 SET NAMES binary*/;\nINSERT INTO `t` VALUES\n(1,\"a;b\",NULL),\n(2,\"it\\'s\",\"\\0\xff;\\'\"),\n(3,'x''y;','z');\n-- a comment; here\nINSERT INTO `t;x` VALUES (4,'w');\n";
        let stmts = split(sql);
        assert_eq!(
            stmts.len(),
            3,
            "{:?}",
            stmts
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect::<Vec<_>>()
        );
        assert!(stmts[1].ends_with(b"(3,'x''y;','z')"));
        assert!(stmts[2].ends_with(b"(4,'w')"));
    }

    #[test]
    fn only_session_settings_run_besides_inserts() {
        for ok in [
            "/*!40101 SET NAMES binary*/",
            "/*!40014 SET FOREIGN_KEY_CHECKS=0*/",
            "/*!40103 SET TIME_ZONE='+00:00' */",
            "SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO,ANSI_QUOTES'",
            "SET SESSION unique_checks = 0",
        ] {
            assert!(check_session_setting(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            "/*!40000 DROP DATABASE other */",
            "SET GLOBAL read_only = 1",
            "SET @@global.time_zone = '+01:00'",
            "SET NAMES binary, PASSWORD FOR root = 'x'",
            "DELETE FROM t",
        ] {
            assert!(check_session_setting(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn inserts_are_retargeted() {
        let to = "`m`.`all`";
        let r = |s: &str| retarget_insert(s.as_bytes(), to).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            r("INSERT INTO `t` VALUES (1)").unwrap(),
            "INSERT INTO `m`.`all` VALUES (1)"
        );
        assert_eq!(
            r("\ninsert ignore into `d`.`t` VALUES (1)").unwrap(),
            "\ninsert ignore into `m`.`all` VALUES (1)"
        );
        assert_eq!(
            r("INSERT INTO t (a) VALUES (1)").unwrap(),
            "INSERT INTO `m`.`all` (a) VALUES (1)"
        );
        assert!(r("/*!40101 SET NAMES binary*/").is_none());
        assert!(r("REPLACE INTO `t` VALUES (1)").is_none());
    }
}
