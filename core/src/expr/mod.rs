//! Expression filters: SQL boolean expressions over a row's columns (`c % 2 = 0 AND name LIKE
//! 'x%'`), parsed once with `sqlparser`, checked when the task file is read, and evaluated in
//! dm with MySQL's comparison and conversion rules (`expr_value`) and its three-valued logic: a
//! row matches only when the expression is true (NULL is not).
//!
//! Supported: column names; numbers, strings, NULL, TRUE/FALSE, `x'..'`/`0x..`/`b'..'`
//! literals, `DATE/TIME/TIMESTAMP '..'`; `+ - * / % DIV`; comparisons and `<=>`; `AND OR
//! NOT XOR`; `IS [NOT] NULL/TRUE/FALSE`; `[NOT] IN (...)`, `[NOT] BETWEEN`, `[NOT] LIKE`,
//! `[NOT] REGEXP`; JSON `->` and `->>` (paths `$`, `.key`, `."key"`, `[n]`); functions NOW(),
//! CURRENT_TIMESTAMP, UTC_TIMESTAMP, SYSDATE, CURDATE, UTC_DATE (UTC), JSON_EXTRACT,
//! JSON_UNQUOTE, LENGTH, CHAR_LENGTH, LOWER, UPPER, CONCAT, ABS, COALESCE, IFNULL.
//! Strings compare byte for byte (as a binary collation would; trailing spaces do not count
//! for character strings); TIMESTAMP values and literals without an offset are read in UTC.
//! A column the table no longer has (dropped since) is NULL, as in TiDB DM.

mod value;

use crate::datum::Datum;
use crate::table::Table;
use regex::bytes::Regex;
use sqlparser::ast::{
    BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget,
    UnaryOperator, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::cmp::Ordering;
use std::collections::HashMap;
use value::{boolean, compare, from_datum, TemporalKind, V};

#[derive(Debug, Clone)]
pub struct RowExpr {
    text: String,
    expr: Expr,
    /// REGEXP patterns written as literals, compiled once.
    regexes: HashMap<String, Regex>,
}

/// A LIKE pattern's parts: `%`, `_` and the bytes to match as they are.
#[derive(Clone, Copy, PartialEq)]
enum LikePart {
    Any,
    One,
    Byte(u8),
}

/// SQL LIKE with `%` and `_` (escape `\`), byte-wise. At most (value x pattern) steps: only
/// the last `%` is ever retried (a later one matching means an earlier one needs no other
/// length), where trying every length at every `%` took exponential time on a pattern of
/// many `%` against a long value (a task's filter could stall the stream).
fn like(s: &[u8], p: &[u8]) -> bool {
    let mut parts = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        parts.push(match p[i] {
            b'%' => LikePart::Any,
            b'_' => LikePart::One,
            b'\\' if i + 1 < p.len() => {
                i += 1;
                LikePart::Byte(p[i])
            }
            c => LikePart::Byte(c),
        });
        i += 1;
    }
    // (part after the last `%`, how much of the value that `%` has taken)
    let mut retry: Option<(usize, usize)> = None;
    let (mut si, mut pi) = (0, 0);
    while si < s.len() {
        match parts.get(pi) {
            Some(LikePart::Any) => {
                pi += 1;
                retry = Some((pi, si));
            }
            Some(LikePart::One) => (si, pi) = (si + 1, pi + 1),
            Some(LikePart::Byte(c)) if *c == s[si] => (si, pi) = (si + 1, pi + 1),
            _ => match retry {
                Some((after, taken)) => {
                    retry = Some((after, taken + 1));
                    (si, pi) = (taken + 1, after);
                }
                None => return false,
            },
        }
    }
    parts[pi..].iter().all(|p| *p == LikePart::Any)
}

/// One step of a JSON path.
enum Step {
    Key(String),
    Index(usize),
}

/// `$`, `$.a`, `$."a b"`, `$.a[2].b`: the steps; an error names what is not supported.
fn json_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON path `{path}` does not start with `$`"))?;
    let mut steps = vec![];
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' if chars.peek() == Some(&'"') => {
                chars.next();
                let key: String = chars.by_ref().take_while(|c| *c != '"').collect();
                steps.push(Step::Key(key));
            }
            '.' => {
                let mut key = String::new();
                while let Some(c) = chars.peek().copied() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                if key.is_empty() || key == "*" {
                    return Err(format!("JSON path `{path}`: wildcards are not supported"));
                }
                steps.push(Step::Key(key));
            }
            '[' => {
                let n: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let n = n.trim().parse().map_err(|_| {
                    format!("JSON path `{path}`: only array indexes such as [0] are supported")
                })?;
                steps.push(Step::Index(n));
            }
            c if c.is_whitespace() => {}
            _ => return Err(format!("JSON path `{path}` is not supported")),
        }
    }
    Ok(steps)
}

/// The value at `path` in `doc`, as MySQL's `->` gives it (NULL where there is none).
fn json_extract(doc: &V, path: &V) -> V {
    let (Some(doc), Some(path)) = (doc.json(), path.bytes()) else {
        return V::Null;
    };
    let Ok(steps) = json_path(&String::from_utf8_lossy(&path)) else {
        return V::Null;
    };
    let mut at = &doc;
    for step in &steps {
        let next = match step {
            Step::Key(k) => at.get(k.as_str()),
            Step::Index(i) => match at {
                serde_json::Value::Array(a) => a.get(*i),
                // MySQL: [0] of a non-array is the value itself.
                other if *i == 0 => Some(other),
                _ => None,
            },
        };
        match next {
            Some(n) => at = n,
            None => return V::Null,
        }
    }
    V::Json(at.clone())
}

/// JSON_UNQUOTE / `->>`: a JSON string's text, any other JSON value's text.
fn json_unquote(v: V) -> V {
    match v {
        V::Json(serde_json::Value::String(s)) => V::Str(s.into_bytes()),
        V::Json(j) => V::Str(j.to_string().into_bytes()),
        V::Null => V::Null,
        other => match other.json() {
            Some(serde_json::Value::String(s)) => V::Str(s.into_bytes()),
            _ => other,
        },
    }
}

fn function_args(args: &FunctionArguments) -> Result<Vec<&Expr>, String> {
    match args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(format!("`{other}`")),
            })
            .collect(),
        FunctionArguments::Subquery(q) => Err(format!("`{q}`")),
    }
}

/// Functions the evaluator knows, with how many arguments each takes (min, max).
fn function_arity(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "NOW" | "CURRENT_TIMESTAMP" | "LOCALTIME" | "LOCALTIMESTAMP" | "SYSDATE"
        | "UTC_TIMESTAMP" => (0, 1),
        "CURDATE" | "CURRENT_DATE" | "UTC_DATE" => (0, 0),
        "JSON_EXTRACT" => (2, 2),
        "JSON_UNQUOTE" | "LENGTH" | "OCTET_LENGTH" | "CHAR_LENGTH" | "CHARACTER_LENGTH"
        | "LOWER" | "LCASE" | "UPPER" | "UCASE" | "ABS" => (1, 1),
        "IFNULL" => (2, 2),
        "COALESCE" | "CONCAT" => (1, usize::MAX),
        _ => return None,
    })
}

fn arith(op: &BinaryOperator, a: &V, b: &V) -> V {
    // Exact integer arithmetic where it stays integer.
    if let (Some(x), Some(y), false) = (a.int(), b.int(), matches!(op, BinaryOperator::Divide)) {
        let r = match op {
            BinaryOperator::Plus => x.checked_add(y),
            BinaryOperator::Minus => x.checked_sub(y),
            BinaryOperator::Multiply => x.checked_mul(y),
            BinaryOperator::MyIntegerDivide => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        return r.map_or(V::Null, V::Int);
    }
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        return V::Null;
    };
    match op {
        BinaryOperator::Plus => V::Num(x + y),
        BinaryOperator::Minus => V::Num(x - y),
        BinaryOperator::Multiply => V::Num(x * y),
        // Division by zero is NULL in SQL.
        _ if y == 0.0 => V::Null,
        BinaryOperator::Divide => V::Num(x / y),
        BinaryOperator::MyIntegerDivide => V::Int((x / y).trunc() as i128),
        _ => V::Num(x % y),
    }
}

impl RowExpr {
    /// Parses `text` and checks that every part of it is supported (a task file is refused
    /// at start, not at the first row).
    pub fn parse(text: &str) -> Result<Self, String> {
        let expr = Parser::new(&MySqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| {
                let e = p.parse_expr()?;
                // All of the text is the expression: `c = 1 junk` is a mistake.
                p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
                Ok(e)
            })
            .map_err(|e| format!("cannot parse `{text}`: {e}"))?;
        let mut parsed = RowExpr {
            text: text.to_string(),
            expr: expr.clone(),
            regexes: HashMap::new(),
        };
        parsed.check(&expr)?;
        Ok(parsed)
    }

    /// Whether `row` of `table` makes the expression true.
    pub fn matches(&self, table: &Table, row: &[Datum]) -> Result<bool, String> {
        Ok(self.eval(&self.expr, table, row)?.truth() == Some(true))
    }

    fn unsupported(&self, what: &str) -> String {
        format!("expression `{}`: `{what}` is not supported", self.text)
    }

    /// Refuses what `eval` does not know; compiles literal REGEXP patterns.
    fn check(&mut self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Ok(()),
            Expr::Value(v) => match &v.value {
                Value::Number(..)
                | Value::SingleQuotedString(_)
                | Value::DoubleQuotedString(_)
                | Value::Boolean(_)
                | Value::Null
                | Value::HexStringLiteral(_) => Ok(()),
                Value::SingleQuotedByteStringLiteral(bits)
                    if bits.bytes().all(|b| b == b'0' || b == b'1') =>
                {
                    Ok(())
                }
                other => Err(self.unsupported(&other.to_string())),
            },
            Expr::TypedString(t)
                if matches!(
                    t.data_type,
                    DataType::Date
                        | DataType::Time(..)
                        | DataType::Timestamp(..)
                        | DataType::Datetime(_)
                ) =>
            {
                Ok(())
            }
            Expr::Nested(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNotFalse(x) => self.check(x),
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus => self.check(expr),
                other => Err(self.unsupported(&other.to_string())),
            },
            Expr::Between {
                expr, low, high, ..
            } => {
                self.check(expr)?;
                self.check(low)?;
                self.check(high)
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                self.check(expr)?;
                list.iter().try_for_each(|x| self.check(x))
            }
            Expr::Like {
                expr,
                pattern,
                escape_char: None,
                any: false,
                ..
            } => {
                self.check(expr)?;
                self.check(pattern)
            }
            Expr::RLike { expr, pattern, .. } => {
                self.check(expr)?;
                self.check(pattern)?;
                if let Expr::Value(v) = &**pattern {
                    if let Value::SingleQuotedString(p) | Value::DoubleQuotedString(p) = &v.value {
                        let re = Regex::new(p).map_err(|err| {
                            format!("expression `{}`: REGEXP `{p}`: {err}", self.text)
                        })?;
                        self.regexes.insert(p.clone(), re);
                    }
                }
                Ok(())
            }
            Expr::BinaryOp { left, op, right } => {
                use BinaryOperator::*;
                if !matches!(
                    op,
                    And | Or
                        | Xor
                        | Eq
                        | NotEq
                        | Lt
                        | LtEq
                        | Gt
                        | GtEq
                        | Spaceship
                        | Plus
                        | Minus
                        | Multiply
                        | Divide
                        | Modulo
                        | MyIntegerDivide
                        | Arrow
                        | LongArrow
                ) {
                    return Err(self.unsupported(&op.to_string()));
                }
                if let (Arrow | LongArrow, Expr::Value(v)) = (op, &**right) {
                    if let Value::SingleQuotedString(p) | Value::DoubleQuotedString(p) = &v.value {
                        json_path(p).map_err(|e| format!("expression `{}`: {e}", self.text))?;
                    }
                }
                self.check(left)?;
                self.check(right)
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                let Some((min, max)) = function_arity(&name) else {
                    return Err(self.unsupported(&format!("{name}()")));
                };
                let args = function_args(&f.args).map_err(|a| self.unsupported(&a))?;
                if args.len() < min || args.len() > max {
                    return Err(format!(
                        "expression `{}`: {name}() takes {min}{} arguments, not {}",
                        self.text,
                        if max == usize::MAX {
                            " or more".to_string()
                        } else if max != min {
                            format!(" to {max}")
                        } else {
                            String::new()
                        },
                        args.len()
                    ));
                }
                args.into_iter().try_for_each(|a| self.check(a))
            }
            other => Err(self.unsupported(&other.to_string())),
        }
    }

    fn eval(&self, e: &Expr, t: &Table, row: &[Datum]) -> Result<V, String> {
        let ev = |x: &Expr| self.eval(x, t, row);
        Ok(match e {
            Expr::Identifier(id) => column(&id.value, t, row),
            Expr::CompoundIdentifier(ids) => match ids.last() {
                Some(id) => column(&id.value, t, row),
                None => V::Null,
            },
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => match n.parse::<i128>() {
                    Ok(i) => V::Int(i),
                    Err(_) => V::Num(n.parse().map_err(|_| format!("bad number {n}"))?),
                },
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    V::Str(s.as_bytes().to_vec())
                }
                Value::HexStringLiteral(h) => V::Hex(hex_bytes(h)),
                Value::SingleQuotedByteStringLiteral(bits) => V::Hex(bit_bytes(bits)),
                Value::Boolean(b) => boolean(Some(*b)),
                Value::Null => V::Null,
                other => return Err(self.unsupported(&other.to_string())),
            },
            Expr::TypedString(ts) => {
                let text = ts.value.value.to_string();
                let text = text.trim_matches(['\'', '"']);
                let parsed = match ts.data_type {
                    DataType::Time(..) => value::parse_time(text),
                    _ => value::parse_datetime(text),
                };
                parsed.map_or(V::Null, V::Time)
            }
            Expr::Nested(x) => ev(x)?,
            Expr::IsNull(x) => boolean(Some(ev(x)? == V::Null)),
            Expr::IsNotNull(x) => boolean(Some(ev(x)? != V::Null)),
            Expr::IsTrue(x) => boolean(Some(ev(x)?.truth() == Some(true))),
            Expr::IsFalse(x) => boolean(Some(ev(x)?.truth() == Some(false))),
            Expr::IsNotTrue(x) => boolean(Some(ev(x)?.truth() != Some(true))),
            Expr::IsNotFalse(x) => boolean(Some(ev(x)?.truth() != Some(false))),
            Expr::UnaryOp { op, expr } => {
                let v = ev(expr)?;
                match op {
                    UnaryOperator::Not => boolean(v.truth().map(|b| !b)),
                    UnaryOperator::Minus => match v.int() {
                        Some(i) => V::Int(-i),
                        None => v.number().map_or(V::Null, |n| V::Num(-n)),
                    },
                    _ => v,
                }
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (v, lo, hi) = (ev(expr)?, ev(low)?, ev(high)?);
                let inside = match (compare(&v, &lo), compare(&v, &hi)) {
                    (Some(a), Some(b)) => Some(a != Ordering::Less && b != Ordering::Greater),
                    _ => None,
                };
                boolean(inside.map(|b| b != *negated))
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } => {
                let v = ev(expr)?;
                let mut found = Some(false);
                for item in list {
                    match compare(&v, &ev(item)?) {
                        Some(Ordering::Equal) => {
                            found = Some(true);
                            break;
                        }
                        None => found = None,
                        _ => {}
                    }
                }
                boolean(found.map(|b| b != *negated))
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                ..
            } => match (ev(expr)?.bytes(), ev(pattern)?.bytes()) {
                (Some(s), Some(p)) => boolean(Some(like(&s, &p) != *negated)),
                _ => V::Null,
            },
            Expr::RLike {
                negated,
                expr,
                pattern,
                ..
            } => match (ev(expr)?.bytes(), ev(pattern)?.bytes()) {
                (Some(s), Some(p)) => {
                    let p = String::from_utf8_lossy(&p).into_owned();
                    let found = match self.regexes.get(&p) {
                        Some(re) => re.is_match(&s),
                        None => Regex::new(&p)
                            .map_err(|e| format!("expression `{}`: REGEXP: {e}", self.text))?
                            .is_match(&s),
                    };
                    boolean(Some(found != *negated))
                }
                _ => V::Null,
            },
            Expr::BinaryOp { left, op, right } => {
                let (a, b) = (ev(left)?, ev(right)?);
                let cmp = || compare(&a, &b);
                match op {
                    BinaryOperator::And => boolean(match (a.truth(), b.truth()) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    }),
                    BinaryOperator::Or => boolean(match (a.truth(), b.truth()) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    }),
                    BinaryOperator::Xor => boolean(a.truth().zip(b.truth()).map(|(x, y)| x != y)),
                    BinaryOperator::Eq => boolean(cmp().map(|o| o == Ordering::Equal)),
                    BinaryOperator::NotEq => boolean(cmp().map(|o| o != Ordering::Equal)),
                    BinaryOperator::Lt => boolean(cmp().map(|o| o == Ordering::Less)),
                    BinaryOperator::LtEq => boolean(cmp().map(|o| o != Ordering::Greater)),
                    BinaryOperator::Gt => boolean(cmp().map(|o| o == Ordering::Greater)),
                    BinaryOperator::GtEq => boolean(cmp().map(|o| o != Ordering::Less)),
                    BinaryOperator::Spaceship => boolean(Some(match (&a, &b) {
                        (V::Null, V::Null) => true,
                        (V::Null, _) | (_, V::Null) => false,
                        _ => cmp() == Some(Ordering::Equal),
                    })),
                    BinaryOperator::Arrow => json_extract(&a, &b),
                    BinaryOperator::LongArrow => json_unquote(json_extract(&a, &b)),
                    op => arith(op, &a, &b),
                }
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                let args = function_args(&f.args).map_err(|a| self.unsupported(&a))?;
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(ev(a)?);
                }
                self.function(&name, vals)?
            }
            other => return Err(self.unsupported(&other.to_string())),
        })
    }

    fn function(&self, name: &str, mut args: Vec<V>) -> Result<V, String> {
        let first = || args.first().cloned().unwrap_or(V::Null);
        let text = |v: V, f: fn(&str) -> String| match v.bytes() {
            Some(b) => V::Str(f(&String::from_utf8_lossy(&b)).into_bytes()),
            None => V::Null,
        };
        Ok(match name {
            "NOW" | "CURRENT_TIMESTAMP" | "LOCALTIME" | "LOCALTIMESTAMP" | "SYSDATE"
            | "UTC_TIMESTAMP" => value::now(TemporalKind::DateTime),
            "CURDATE" | "CURRENT_DATE" | "UTC_DATE" => value::now(TemporalKind::Date),
            "JSON_EXTRACT" => json_extract(&args[0], &args[1]),
            "JSON_UNQUOTE" => json_unquote(first()),
            "LENGTH" | "OCTET_LENGTH" => {
                first().bytes().map_or(V::Null, |b| V::Int(b.len() as i128))
            }
            "CHAR_LENGTH" | "CHARACTER_LENGTH" => first().bytes().map_or(V::Null, |b| {
                V::Int(String::from_utf8_lossy(&b).chars().count() as i128)
            }),
            "LOWER" | "LCASE" => text(first(), str::to_lowercase),
            "UPPER" | "UCASE" => text(first(), str::to_uppercase),
            "ABS" => match first() {
                V::Null => V::Null,
                v => match v.int() {
                    Some(i) => V::Int(i.abs()),
                    None => V::Num(v.number().unwrap_or(0.0).abs()),
                },
            },
            "IFNULL" | "COALESCE" => args.drain(..).find(|v| *v != V::Null).unwrap_or(V::Null),
            "CONCAT" => {
                let mut out = vec![];
                for v in &args {
                    match v.bytes() {
                        Some(b) => out.extend(b),
                        None => return Ok(V::Null),
                    }
                }
                V::Str(out)
            }
            other => return Err(self.unsupported(&format!("{other}()"))),
        })
    }
}

/// A column's value; NULL for a column the table does not have (dropped since the task
/// started), as TiDB DM evaluates it.
fn column(name: &str, t: &Table, row: &[Datum]) -> V {
    match t.column_index(name) {
        Some(i) => row.get(i).map_or(V::Null, |d| from_datum(&t.columns[i], d)),
        None => V::Null,
    }
}

fn hex_bytes(h: &str) -> Vec<u8> {
    let h = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    (0..h.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

fn bit_bytes(bits: &str) -> Vec<u8> {
    let pad = (8 - bits.len() % 8) % 8;
    let bits = format!("{}{bits}", "0".repeat(pad));
    bits.as_bytes()
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, b| (acc << 1) | (b - b'0')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, TableName};

    fn table() -> Table {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            members: vec![],
        };
        Table {
            name: TableName::new("d", "t"),
            columns: vec![col("id", "int"), col("c", "int"), col("name", "varchar")],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            prefixed_keys: vec![],
        }
    }

    fn check(expr: &str, row: &[Datum]) -> bool {
        RowExpr::parse(expr)
            .unwrap()
            .matches(&table(), row)
            .unwrap()
    }

    /// The LIKE of before: every length at every `%` (exponential, but plainly right).
    fn like_by_trying_all(s: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'%', rest)) => (0..=s.len()).any(|i| like_by_trying_all(&s[i..], rest)),
            Some((b'_', rest)) => !s.is_empty() && like_by_trying_all(&s[1..], rest),
            Some((b'\\', rest)) if !rest.is_empty() => {
                s.first() == rest.first() && like_by_trying_all(&s[1..], &rest[1..])
            }
            Some((c, rest)) => s.first() == Some(c) && like_by_trying_all(&s[1..], rest),
        }
    }

    #[test]
    fn like_matches_as_trying_every_length_did_without_its_time() {
        // Every value and pattern over a small alphabet, up to 5 and 4 bytes.
        let alphabet: &[u8] = b"ab%_\\";
        let all = |n: usize| -> Vec<Vec<u8>> {
            let mut out = vec![vec![]];
            for len in 1..=n {
                let mut k = vec![0usize; len];
                loop {
                    out.push(k.iter().map(|&i| alphabet[i]).collect());
                    let mut d = 0;
                    while d < len && k[d] == alphabet.len() - 1 {
                        k[d] = 0;
                        d += 1;
                    }
                    if d == len {
                        break;
                    }
                    k[d] += 1;
                }
            }
            out
        };
        let (values, patterns) = (all(5), all(4));
        for v in &values {
            for p in &patterns {
                assert_eq!(
                    like(v, p),
                    like_by_trying_all(v, p),
                    "{:?} LIKE {:?}",
                    String::from_utf8_lossy(v),
                    String::from_utf8_lossy(p)
                );
            }
        }
        // What took exponential time: many `%` against a long value that does not match.
        let long = vec![b'a'; 20_000];
        assert!(!like(&long, b"%a%a%a%a%a%a%a%a%a%a%a%a%b"));
        assert!(like(&long, b"%a%a%a%a%a%a%a%a%a%a%a%a%"));
    }

    #[test]
    fn evaluates_like_sql() {
        let r = [
            Datum::Int(1),
            Datum::Int(4),
            Datum::Bytes(b"alice".to_vec()),
        ];
        assert!(check("c % 2 = 0", &r));
        assert!(check("c > 3 AND name LIKE 'a%e'", &r));
        assert!(check("c IN (1, 4) AND id BETWEEN 0 AND 1", &r));
        assert!(!check("NOT (c = 4) OR name = 'bob'", &r));
        let n = [Datum::Int(2), Datum::Null, Datum::Null];
        assert!(!check("c % 2 = 0", &n), "NULL is not true");
        assert!(check("c IS NULL", &n));
        assert!(!check("NOT c = 1", &n));
        assert!(check("c IS NULL OR c = 1", &n));
        assert!(RowExpr::parse("c = ").is_err());
        assert!(RowExpr::parse("c = 1 junk").is_err());
        let big = [
            Datum::Int(9_007_199_254_740_993),
            Datum::Int(1),
            Datum::Null,
        ];
        assert!(
            check("id = 9007199254740993", &big),
            "BIGINTs compare exactly"
        );
        assert!(!check("id = 9007199254740992", &big));
        assert!(check("id % 2 = 1", &big));
        // A column the table does not have (dropped since) is NULL: never true.
        assert!(!check("nope % 2 = 0", &r));
        assert!(check("nope IS NULL", &r));
    }

    fn typed(name: &str, data_type: &str, members: &[&str]) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    /// TiDB DM's expression_filter workload: each expression with the row it filters and the
    /// row it keeps, as the binlog (ENUM/SET as numbers) and as the full phase (names) give
    /// them.
    #[test]
    fn tidb_dm_expressions_mean_what_they_mean_in_mysql() {
        let table = Table {
            name: TableName::new("expr_filter", "t1"),
            columns: vec![
                typed("c_bit", "bit", &[]),
                typed("c_date", "date", &[]),
                typed("c_datetime", "datetime", &[]),
                typed("c_timestamp", "timestamp", &[]),
                typed("c_time", "time", &[]),
                typed("c_year", "year", &[]),
                typed("c_char", "char", &[]),
                typed("c_binary", "binary", &[]),
                typed("c_enum", "enum", &["a", "b", "c"]),
                typed("c_set", "set", &["a", "b", "c"]),
                typed("c_json", "json", &[]),
                typed("ts", "datetime", &[]),
                typed("name", "varchar", &[]),
            ],
            primary_key: vec![],
            unique_keys: vec![],
            prefixed_keys: vec![],
        };
        let t = |s: &str| Datum::Temporal(s.into());
        let b = |s: &str| Datum::Bytes(s.as_bytes().to_vec());
        let filtered = [
            Datum::Bytes(vec![0b1111]),
            t("2021-06-22"),
            t("2021-01-01 12:34:56.789000"),
            // '2021-01-01 12:34:56.5678' written at +08:00, in UTC.
            t("2021-01-01 04:34:56.567800"),
            t("-838:58:50.123450"),
            Datum::Int(2021),
            b("2234"),
            b("b"),
            Datum::UInt(2),
            Datum::UInt(0b110),
            b(r#"{"id": 2}"#),
            t("2040-01-01 00:00:00"),
            b("X Æ A-12"),
        ];
        let kept = [
            Datum::Bytes(vec![0b1010]),
            t("1995-03-07"),
            t("1000-01-01 12:34:56.789000"),
            t("2020-01-01 04:34:56.123400"),
            t("-838:59:50.123450"),
            Datum::Int(2020),
            b("1234"),
            b("a"),
            Datum::UInt(1),
            Datum::UInt(0b001),
            b(r#"{"id": 1}"#),
            t("1999-01-01 00:00:00"),
            b("Müller…"),
        ];
        // The full phase reads ENUM and SET as their names.
        let mut named = filtered.clone();
        named[8] = b("b");
        named[9] = b("b,c");
        let exprs = [
            "c_bit = b'1111'",
            "c_date = '2021-06-22'",
            "c_datetime = '2021-01-01 12:34:56.789'",
            "c_timestamp = '2021-01-01 12:34:56.5678+08:00'",
            "c_time = '-838:58:50.12345'",
            "c_year = '2021'",
            "c_char = '2234'",
            "c_binary = 'b'",
            "c_enum = 'b'",
            "c_set = 'b,c'",
            "c_json->\"$.id\" = 2",
            "ts > NOW()",
            "name != 'Müller…'",
        ];
        for (i, text) in exprs.iter().enumerate() {
            let e = RowExpr::parse(text).unwrap();
            let only = |row: &[Datum]| {
                let mut r = vec![Datum::Null; table.columns.len()];
                r[i] = row[i].clone();
                r
            };
            assert!(
                e.matches(&table, &only(&filtered)).unwrap(),
                "{text} filters"
            );
            assert!(
                e.matches(&table, &only(&named)).unwrap(),
                "{text} filters (names)"
            );
            assert!(!e.matches(&table, &only(&kept)).unwrap(), "{text} keeps");
            let nulls = vec![Datum::Null; table.columns.len()];
            assert!(
                !e.matches(&table, &nulls).unwrap(),
                "{text}: NULL is not true"
            );
        }
        assert!(check("c_enum_number_is_null IS NULL", &[]));
        let more = |text: &str, row: &[Datum], cols: Vec<Column>| {
            let table = Table {
                columns: cols,
                ..table.clone()
            };
            RowExpr::parse(text).unwrap().matches(&table, row).unwrap()
        };
        let dbl = |n: &str| typed(n, "double", &[]);
        assert!(more(
            "a*a + b*b = c*c",
            &[Datum::Double(3.0), Datum::Double(4.0), Datum::Double(5.0)],
            vec![dbl("a"), dbl("b"), dbl("c")]
        ));
        assert!(more(
            "c_enum = 2 AND c_enum + 0 = 2",
            &[Datum::UInt(2)],
            vec![typed("c_enum", "enum", &["a", "b", "c"])]
        ));
        assert!(more(
            "c_json->>'$.a[1]' = 'y' AND JSON_EXTRACT(c_json, '$.n') > 1.5",
            &[b(r#"{"a": ["x", "y"], "n": 2}"#)],
            vec![typed("c_json", "longtext", &[])]
        ));
        assert!(more(
            "v = 'abc  ' AND v LIKE 'ab%' AND v REGEXP '^a.c$' AND '12abc' = 12",
            &[b("abc")],
            vec![typed("v", "varchar", &[])]
        ));
    }

    #[test]
    fn what_is_not_supported_fails_at_parse() {
        for (text, says) in [
            ("c = ANY (SELECT 1)", "not supported"),
            ("SLEEP(1) = 0", "`SLEEP()` is not supported"),
            ("c->'$.*' = 1", "wildcards"),
            ("NOW(1, 2) > c", "takes 0 to 1 arguments"),
            ("c REGEXP '('", "REGEXP"),
        ] {
            let err = RowExpr::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
