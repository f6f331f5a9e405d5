//! Expression filters: SQL boolean expressions over a row's columns (`c % 2 = 0 AND name LIKE
//! 'x%'`), parsed once with `sqlparser` and evaluated in dm, with SQL's three-valued logic: a
//! row matches only when the expression is true (NULL is not).
//!
//! Supported: column names, numbers, strings, NULL, TRUE/FALSE, `+ - * / %`, comparisons,
//! `AND OR NOT XOR`, `IS [NOT] NULL`, `[NOT] IN (...)`, `[NOT] BETWEEN`, `[NOT] LIKE`.
//! Strings compare byte for byte; a string compared with a number is read as a number.

use crate::db::Datum;
use crate::schema::Table;
use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::cmp::Ordering;

#[derive(Debug, Clone)]
pub struct RowExpr {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    /// Integers stay exact (BIGINT values do not fit a double).
    Int(i128),
    Num(f64),
    Str(Vec<u8>),
}

impl V {
    fn num(&self) -> Option<f64> {
        match self {
            V::Int(i) => Some(*i as f64),
            V::Num(n) => Some(*n),
            V::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            V::Null => None,
        }
    }

    fn truth(&self) -> Option<bool> {
        match self {
            V::Null => None,
            v => Some(v.num().unwrap_or(0.0) != 0.0),
        }
    }
}

fn boolean(b: Option<bool>) -> V {
    match b {
        None => V::Null,
        Some(b) => V::Num(if b { 1.0 } else { 0.0 }),
    }
}

fn from_datum(d: &Datum) -> V {
    match d {
        Datum::Null => V::Null,
        Datum::Int(i) => V::Int(*i as i128),
        Datum::UInt(u) => V::Int(*u as i128),
        Datum::Float(f) => V::Num(*f as f64),
        Datum::Double(f) => V::Num(*f),
        Datum::Decimal(s) => V::Num(s.parse().unwrap_or(0.0)),
        Datum::Temporal(s) => V::Str(s.as_bytes().to_vec()),
        Datum::Bytes(b) => V::Str(b.clone()),
    }
}

fn compare(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        _ => a.num()?.partial_cmp(&b.num()?),
    }
}

/// SQL LIKE with `%` and `_` (escape `\`), byte-wise.
fn like(s: &[u8], p: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'%', rest)) => (0..=s.len()).any(|i| like(&s[i..], rest)),
        Some((b'_', rest)) => !s.is_empty() && like(&s[1..], rest),
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == rest.first() && like(&s[1..], &rest[1..])
        }
        Some((c, rest)) => s.first() == Some(c) && like(&s[1..], rest),
    }
}

impl RowExpr {
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
        Ok(RowExpr {
            text: text.to_string(),
            expr,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `row` of `table` makes the expression true.
    pub fn matches(&self, table: &Table, row: &[Datum]) -> Result<bool, String> {
        Ok(self.eval(&self.expr, table, row)?.truth() == Some(true))
    }

    fn eval(&self, e: &Expr, t: &Table, row: &[Datum]) -> Result<V, String> {
        let ev = |x: &Expr| self.eval(x, t, row);
        Ok(match e {
            Expr::Identifier(id) => self.column(&id.value, t, row)?,
            Expr::CompoundIdentifier(ids) => match ids.last() {
                Some(id) => self.column(&id.value, t, row)?,
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
                Value::Boolean(b) => boolean(Some(*b)),
                Value::Null => V::Null,
                other => return Err(self.unsupported(&other.to_string())),
            },
            Expr::Nested(x) => ev(x)?,
            Expr::IsNull(x) => boolean(Some(ev(x)? == V::Null)),
            Expr::IsNotNull(x) => boolean(Some(ev(x)? != V::Null)),
            Expr::UnaryOp { op, expr } => {
                let v = ev(expr)?;
                match op {
                    UnaryOperator::Not => boolean(v.truth().map(|b| !b)),
                    UnaryOperator::Minus => match v {
                        V::Int(i) => V::Int(-i),
                        v => v.num().map_or(V::Null, |n| V::Num(-n)),
                    },
                    UnaryOperator::Plus => v,
                    other => return Err(self.unsupported(&other.to_string())),
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
            } => match (ev(expr)?, ev(pattern)?) {
                (V::Null, _) | (_, V::Null) => V::Null,
                (s, p) => {
                    let bytes = |v: V| match v {
                        V::Str(b) => b,
                        V::Int(i) => i.to_string().into_bytes(),
                        V::Num(n) => n.to_string().into_bytes(),
                        V::Null => vec![],
                    };
                    boolean(Some(like(&bytes(s), &bytes(p)) != *negated))
                }
            },
            Expr::BinaryOp { left, op, right } => {
                let (a, b) = (ev(left)?, ev(right)?);
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
                    BinaryOperator::Eq => boolean(compare(&a, &b).map(|o| o == Ordering::Equal)),
                    BinaryOperator::NotEq => boolean(compare(&a, &b).map(|o| o != Ordering::Equal)),
                    BinaryOperator::Lt => boolean(compare(&a, &b).map(|o| o == Ordering::Less)),
                    BinaryOperator::LtEq => {
                        boolean(compare(&a, &b).map(|o| o != Ordering::Greater))
                    }
                    BinaryOperator::Gt => boolean(compare(&a, &b).map(|o| o == Ordering::Greater)),
                    BinaryOperator::GtEq => boolean(compare(&a, &b).map(|o| o != Ordering::Less)),
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo => match (&a, &b, a.num(), b.num()) {
                        // Exact integer arithmetic where it stays integer.
                        (V::Int(x), V::Int(y), _, _) if !matches!(op, BinaryOperator::Divide) => {
                            let r = match op {
                                BinaryOperator::Plus => x.checked_add(*y),
                                BinaryOperator::Minus => x.checked_sub(*y),
                                BinaryOperator::Multiply => x.checked_mul(*y),
                                _ => x.checked_rem(*y),
                            };
                            r.map_or(V::Null, V::Int)
                        }
                        (_, _, Some(x), Some(y)) => match op {
                            BinaryOperator::Plus => V::Num(x + y),
                            BinaryOperator::Minus => V::Num(x - y),
                            BinaryOperator::Multiply => V::Num(x * y),
                            // Division by zero is NULL in SQL.
                            BinaryOperator::Divide if y == 0.0 => V::Null,
                            BinaryOperator::Divide => V::Num(x / y),
                            _ if y == 0.0 => V::Null,
                            _ => V::Num(x % y),
                        },
                        _ => V::Null,
                    },
                    other => return Err(self.unsupported(&other.to_string())),
                }
            }
            other => return Err(self.unsupported(&other.to_string())),
        })
    }

    fn column(&self, name: &str, t: &Table, row: &[Datum]) -> Result<V, String> {
        match t.column_index(name) {
            Some(i) => Ok(row.get(i).map_or(V::Null, from_datum)),
            None => Err(format!(
                "expression `{}`: table {} has no column `{name}`",
                self.text, t.name
            )),
        }
    }

    fn unsupported(&self, what: &str) -> String {
        format!("expression `{}`: `{what}` is not supported", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, TableName};

    fn table() -> Table {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable: true,
            generated: false,
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
        assert!(RowExpr::parse("nope = 1")
            .unwrap()
            .matches(&table(), &r)
            .is_err());
    }
}
