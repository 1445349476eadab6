//! Identifiers we mint: a prefix and a time-ordered UUID (v7) in hex, so ids sort in creation
//! order on every engine and "newest first" needs no engine-specific row ids. A leaf.

/// `{prefix}_{uuid v7 hex}`, e.g. `in_0192…`.
pub fn new(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A bare time-ordered UUID (subscriptions and customers are identified by these).
pub fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..100).map(|_| super::new("x")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("x_"));
    }
}
