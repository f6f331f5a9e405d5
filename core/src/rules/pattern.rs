//! Name patterns as TiDB DM writes them: `*` and `?` wildcards, or `~regex`. Matching is
//! case-insensitive, as DM's default.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(p: &str) -> Result<Self, regex::Error> {
        let re = if let Some(re) = p.strip_prefix('~') {
            format!("(?i:{re})")
        } else {
            let mut s = String::from("(?i)^");
            for c in p.chars() {
                match c {
                    '*' => s.push_str(".*"),
                    '?' => s.push('.'),
                    c => s.push_str(&regex::escape(&c.to_string())),
                }
            }
            s.push('$');
            s
        };
        Regex::new(&re).map(Pattern)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_regex() {
        assert!(Pattern::new("shop_*").unwrap().matches("shop_01"));
        assert!(Pattern::new("shop_*").unwrap().matches("SHOP_01"));
        assert!(!Pattern::new("shop_?").unwrap().matches("shop_01"));
        assert!(Pattern::new("~^t\\d+$").unwrap().matches("t12"));
        assert!(!Pattern::new("~^t\\d+$").unwrap().matches("tx"));
        assert!(!Pattern::new("a.b").unwrap().matches("axb"));
    }
}
