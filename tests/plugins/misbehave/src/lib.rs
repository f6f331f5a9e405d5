//! Misbehaves by table: `spin` loops forever, `boom` panics (a trap), `hog` allocates 4 GiB
//! in 64 MiB steps; other tables pass.
use dm_plugin_sdk::*;

#[row_filter]
fn judge(row: &RowChange) -> Verdict {
    match row.get("kind").and_then(Value::as_str) {
        Some("spin") => {
            let mut x: u64 = 1;
            loop {
                x = x.wrapping_mul(3).wrapping_add(1);
                if x == 0 {
                    break;
                }
            }
            Verdict::Keep
        }
        Some("boom") => panic!("boom"),
        Some("hog") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for _ in 0..64 {
                hoard.push(vec![1u8; 64 << 20]);
            }
            Verdict::Set(vec![("kind".into(), Value::Int(hoard.len() as i64))])
        }
        _ => Verdict::Keep,
    }
}
