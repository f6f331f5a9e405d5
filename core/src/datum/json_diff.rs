//! MySQL's partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`): in the after image
//! of an UPDATE, a JSON column may hold a list of changes to the before image's document
//! instead of the new document. They are applied here, to the before image's document, as
//! MySQL applied them: REPLACE the value at a path, INSERT a member or an array element,
//! REMOVE one. The result is the whole new document, which the target then gets like any
//! other value (in safe mode too).

use mysql_common::binlog::jsonb::{JsonContainer, JsonDom};
use mysql_common::binlog::jsondiff::{JsonDiff, JsonDiffOperation};

/// One step of a JSON path.
#[derive(Debug, PartialEq)]
enum Leg {
    Member(String),
    Index(usize),
}

/// The legs of a path as MySQL writes them in a diff: `$`, `.name`, `."quoted name"`, `[n]`.
fn parse_path(path: &str) -> Result<Vec<Leg>, String> {
    let bad = || format!("JSON path `{path}` is not one dm reads");
    let rest = path.trim().strip_prefix('$').ok_or_else(bad)?;
    let b = rest.as_bytes();
    let mut legs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' => i += 1,
            b'.' if b.get(i + 1) == Some(&b'"') => {
                let start = i + 1;
                i += 2;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let quoted = rest.get(start..=i).ok_or_else(bad)?;
                legs.push(Leg::Member(
                    serde_json::from_str(quoted).map_err(|_| bad())?,
                ));
                i += 1;
            }
            b'.' => {
                let start = i + 1;
                i = start;
                while i < b.len() && !matches!(b[i], b'.' | b'[') {
                    i += 1;
                }
                let name = rest[start..i].trim();
                if name.is_empty() {
                    return Err(bad());
                }
                legs.push(Leg::Member(name.to_string()));
            }
            b'[' => {
                let end = rest[i..].find(']').ok_or_else(bad)? + i;
                let n = rest[i + 1..end].trim().parse().map_err(|_| bad())?;
                legs.push(Leg::Index(n));
                i = end + 1;
            }
            _ => return Err(bad()),
        }
    }
    Ok(legs)
}

/// The value `leg` names inside `node`.
fn child<'a>(node: &'a mut JsonDom, leg: &Leg) -> Option<&'a mut JsonDom> {
    match (node, leg) {
        (JsonDom::Container(JsonContainer::Object(m)), Leg::Member(k)) => m.get_mut(k),
        (JsonDom::Container(JsonContainer::Array(a)), Leg::Index(n)) => a.get_mut(*n),
        _ => None,
    }
}

/// Applies one change of a partial update to `doc`.
pub fn apply(doc: &mut JsonDom, diff: &JsonDiff<'_>) -> Result<(), String> {
    let path = diff.path_str().into_owned();
    let legs = parse_path(&path)?;
    let op = diff.operation();
    let value = diff
        .value()
        .map(|v| v.clone().parse())
        .transpose()
        .map_err(|e| format!("bad JSON value for `{path}`: {e}"))?;
    let missing =
        || format!("the partial JSON update's path `{path}` is not in the before image's document");
    let Some((last, parents)) = legs.split_last() else {
        return match (op, value) {
            (JsonDiffOperation::REPLACE, Some(v)) => {
                *doc = v;
                Ok(())
            }
            _ => Err(missing()),
        };
    };
    let mut node = doc;
    for leg in parents {
        node = child(node, leg).ok_or_else(missing)?;
    }
    let needs_value = || format!("the partial JSON update at `{path}` has no value");
    match (op, last, node) {
        (
            JsonDiffOperation::REMOVE,
            Leg::Member(k),
            JsonDom::Container(JsonContainer::Object(m)),
        ) => m.remove(k).map(drop).ok_or_else(missing),
        (JsonDiffOperation::REMOVE, Leg::Index(n), JsonDom::Container(JsonContainer::Array(a)))
            if *n < a.len() =>
        {
            a.remove(*n);
            Ok(())
        }
        // As MySQL: REPLACE needs the member, INSERT its absence; otherwise the before image
        // is not the document the source changed.
        (
            JsonDiffOperation::REPLACE,
            Leg::Member(k),
            JsonDom::Container(JsonContainer::Object(m)),
        ) if m.contains_key(k) => {
            m.insert(k.clone(), value.ok_or_else(needs_value)?);
            Ok(())
        }
        (
            JsonDiffOperation::INSERT,
            Leg::Member(k),
            JsonDom::Container(JsonContainer::Object(m)),
        ) if !m.contains_key(k) => {
            m.insert(k.clone(), value.ok_or_else(needs_value)?);
            Ok(())
        }
        (
            JsonDiffOperation::REPLACE,
            Leg::Index(n),
            JsonDom::Container(JsonContainer::Array(a)),
        ) if *n < a.len() => {
            a[*n] = value.ok_or_else(needs_value)?;
            Ok(())
        }
        // As JSON_ARRAY_INSERT: past the end appends.
        (JsonDiffOperation::INSERT, Leg::Index(n), JsonDom::Container(JsonContainer::Array(a))) => {
            let at = (*n).min(a.len());
            a.insert(at, value.ok_or_else(needs_value)?);
            Ok(())
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::binlog::jsonb::{JsonNumber, JsonScalar};
    use mysql_common::io::ParseBuf;
    use mysql_common::proto::MyDeserialize;

    #[test]
    fn paths_as_mysql_writes_them() {
        use Leg::*;
        assert_eq!(parse_path("$").unwrap(), []);
        assert_eq!(parse_path("$.age").unwrap(), [Member("age".into())]);
        assert_eq!(
            parse_path("$.a[2].\"b c\\\"\"[0]").unwrap(),
            [
                Member("a".into()),
                Index(2),
                Member("b c\"".into()),
                Index(0)
            ]
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$[x]").is_err());
    }

    /// A diff as the binlog holds it: operation, path, and the value in MySQL's binary JSON.
    fn diff(path: &str, op: u8, value: Option<&[u8]>) -> JsonDiff<'static> {
        let mut raw = vec![op, path.len() as u8];
        raw.extend_from_slice(path.as_bytes());
        if let Some(v) = value {
            raw.push(v.len() as u8);
            raw.extend_from_slice(v);
        }
        let d: JsonDiff<'_> = MyDeserialize::deserialize((), &mut ParseBuf(&raw)).unwrap();
        d.into_owned()
    }

    fn int(i: i64) -> JsonDom {
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Int(i)))
    }

    #[test]
    fn replace_insert_and_remove_at_members_and_elements() {
        let mut doc = JsonDom::Container(JsonContainer::Object(
            [
                ("age".to_string(), int(25)),
                (
                    "tags".to_string(),
                    JsonDom::Container(JsonContainer::Array(vec![int(1), int(2)])),
                ),
            ]
            .into(),
        ));
        // INT16 26, as `UPDATE t SET j = JSON_SET(j, '$.age', 26)` logs it.
        apply(&mut doc, &diff("$.age", 0, Some(&[0x05, 26, 0]))).unwrap();
        apply(&mut doc, &diff("$.tags[1]", 1, Some(&[0x05, 9, 0]))).unwrap();
        apply(&mut doc, &diff("$.tags[0]", 2, None)).unwrap();
        apply(&mut doc, &diff("$.new", 1, Some(&[0x05, 7, 0]))).unwrap();
        let want = JsonDom::Container(JsonContainer::Object(
            [
                ("age".to_string(), int(26)),
                ("new".to_string(), int(7)),
                (
                    "tags".to_string(),
                    JsonDom::Container(JsonContainer::Array(vec![int(9), int(2)])),
                ),
            ]
            .into(),
        ));
        assert_eq!(doc, want);
        let err = apply(&mut doc, &diff("$.gone.x", 0, Some(&[0x05, 1, 0]))).unwrap_err();
        assert!(err.contains("$.gone.x"), "{err}");
        // REPLACE of a missing member, INSERT of an existing one: not the source's document.
        assert!(apply(&mut doc, &diff("$.gone", 0, Some(&[0x05, 1, 0]))).is_err());
        assert!(apply(&mut doc, &diff("$.age", 1, Some(&[0x05, 1, 0]))).is_err());
    }
}
