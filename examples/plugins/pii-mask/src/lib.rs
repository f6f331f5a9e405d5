//! PII masker: the `email` column reaches the target as a hash (FNV-1a, 64 bits, hex), so
//! rows stay joinable by email without the address itself.
use dm_plugin_sdk::*;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mask(row: &RowChange) -> Verdict {
    match row.get("email") {
        Some(Value::Bytes(b)) => Verdict::Set(vec![(
            "email".into(),
            Value::text(format!("{:016x}", fnv1a(b))),
        )]),
        _ => Verdict::Keep,
    }
}

row_filter!(mask);
