//! Name patterns as TiDB DM writes them: `*` and `?` wildcards, or `~regex`. Matching is
//! case-insensitive, as DM's default; a task with `case-sensitive: true` matches exactly.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(p: &str) -> Result<Self, regex::Error> {
        Self::with_case(p, false)
    }

    pub fn with_case(p: &str, case_sensitive: bool) -> Result<Self, regex::Error> {
        let flags = if case_sensitive { "" } else { "(?i)" };
        let re = if let Some(re) = p.strip_prefix('~') {
            format!("{flags}(?:{re})")
        } else {
            let mut s = format!("{flags}^");
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
        assert!(!Pattern::with_case("Shop_*", true)
            .unwrap()
            .matches("shop_01"));
        assert!(Pattern::with_case("Shop_*", true)
            .unwrap()
            .matches("Shop_01"));
        assert!(!Pattern::with_case("~^S", true).unwrap().matches("shop"));
    }
}
