//! The rows a task's full phase copies: TiDB DM's `mydumpers.*.where` and the options of its
//! `extra-args` (dumpling's command line) that mean something to dm. Checked when the task
//! file is read: a condition is one SQL expression (it is written into the copier's SELECT),
//! an option dm does not know is refused.

use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// `text` as one SQL expression, as the parser writes it back; an error names why not.
pub fn row_condition(text: &str) -> Result<String, String> {
    let mut parser = Parser::new(&MySqlDialect {})
        .try_with_sql(text)
        .map_err(|e| format!("`{text}` is not an SQL condition: {e}"))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| format!("`{text}` is not an SQL condition: {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "`{text}` is more than one SQL condition (combine them with AND)"
        ));
    }
    Ok(expr.to_string())
}

/// Words of a command line, with '...' and "..." quoting.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut cur: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let word = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(q) => word.push(q),
                        None => return Err(format!("unclosed {c} in `{text}`")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    out.push(w);
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    Ok(out)
}

/// What `extra-args` asks for: the `--where` condition (`None` without one) and, for each
/// option with no effect in dm, why.
pub fn extra_args(text: &str) -> Result<(Option<String>, Vec<String>), String> {
    let mut condition = None;
    let mut no_effect = vec![];
    let mut args = words(text)?.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("extra-args: {name} needs a value"))
        };
        match name.as_str() {
            "--where" => {
                let text = value()?;
                condition =
                    Some(row_condition(&text).map_err(|e| format!("extra-args: --where: {e}"))?)
            }
            "--consistency" => {
                let v = value()?;
                parse_consistency(&v)?;
            }
            "-F" | "--filesize" | "-r" | "--rows" | "-s" | "--statement-size" | "-t"
            | "--threads" => {
                let v = value()?;
                no_effect.push(format!(
                    "extra-args: {name} {v} has no effect: dm copies chunks of `rows` rows with `threads` copiers (set them in the mydumpers entry)"
                ));
            }
            "-T" | "--tables-list" | "-B" | "--database" => {
                let v = value()?;
                no_effect.push(format!(
                    "extra-args: {name} {v} has no effect: dm copies every table the block-allow-list selects (narrow it there to copy fewer)"
                ));
            }
            "--no-schemas" | "--no-data" | "--sql" | "-S" => {
                return Err(format!(
                    "extra-args: {name} is not supported: choose tables with block-allow-list, rows with `where`"
                ))
            }
            other => {
                return Err(format!(
                    "extra-args: unknown option `{other}`; dm takes --where (the rows to copy) and --consistency, and accepts --filesize, --rows, --statement-size, --threads without effect"
                ))
            }
        }
    }
    Ok((condition, no_effect))
}

fn parse_consistency(v: &str) -> Result<super::task::Consistency, String> {
    serde_yaml::from_str(v).map_err(|_| {
        format!("extra-args: --consistency {v}: use auto, flush, lock, snapshot or none")
    })
}

/// extra-args' `--consistency`, if it has one (the arguments were checked when read).
pub fn consistency(text: &str) -> Option<super::task::Consistency> {
    let words = words(text).ok()?;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let value = match w.split_once('=') {
            Some(("--consistency", v)) => Some(v.to_string()),
            None if w == "--consistency" => it.next().cloned(),
            _ => None,
        };
        if let Some(v) = value {
            return parse_consistency(&v).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_one_expression() {
        assert_eq!(
            row_condition("id > 10 AND name <> 'x'").unwrap(),
            "id > 10 AND name <> 'x'"
        );
        assert!(row_condition("1=1; DROP TABLE t").is_err());
        assert!(row_condition("id > 1) OR (1=1").is_err());
        assert!(row_condition("").is_err());
    }

    #[test]
    fn extra_args_where_and_no_effect_options() {
        let (w, notes) =
            extra_args("--consistency none --where 'ts >= \"2024-01-01\"' -F 64MiB").unwrap();
        assert_eq!(w.as_deref(), Some("ts >= \"2024-01-01\""));
        // --consistency is taken; -F has no effect.
        assert_eq!(notes.len(), 1);
        assert_eq!(
            consistency("--where 'a > 1' --consistency none"),
            Some(super::super::task::Consistency::None)
        );
        assert_eq!(
            consistency("--consistency=flush"),
            Some(super::super::task::Consistency::Flush)
        );
        assert!(extra_args("--consistency sometimes")
            .unwrap_err()
            .contains("use auto, flush"));
        let (w, _) = extra_args("--where=\"id < 100\"").unwrap();
        assert_eq!(w.as_deref(), Some("id < 100"));
        let (_, notes) = extra_args("-B test -T t1,t2 --consistency none").unwrap();
        assert!(
            notes[0].contains("block-allow-list") && notes.len() == 2,
            "{notes:?}"
        );
        assert!(extra_args("--no-data")
            .unwrap_err()
            .contains("not supported"));
        assert!(extra_args("--frobnicate")
            .unwrap_err()
            .contains("unknown option"));
        assert!(extra_args("--where 'x").is_err());
    }
}
