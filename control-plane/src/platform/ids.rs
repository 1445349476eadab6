//! Identifiers we mint: a prefix and a time-ordered UUID (v7) in hex, so ids sort in creation
//! order on every engine and "newest first" needs no engine-specific row ids. A leaf.

/// `{prefix}_{uuid v7 hex}`, e.g. `in_0192…`.
pub fn new(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// An id that opens a page by itself (a checkout session, a payment's authentication page):
/// `{prefix}_{uuid v7 hex}{uuid v4 hex}`, still in creation order, with 196 random bits (74 +
/// 122), so it cannot be guessed from a neighbour's; a UUIDv7 alone carries a timestamp and 74.
pub fn unguessable(prefix: &str) -> String {
    format!(
        "{prefix}_{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::new_v4().simple()
    )
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

    #[test]
    fn page_ids_sort_and_carry_more_than_128_random_bits() {
        let ids: Vec<String> = (0..100).map(|_| super::unguessable("cs_test")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let hex = ids[0].trim_start_matches("cs_test_");
        assert_eq!(hex.len(), 64, "{hex}");
        // The second half is a v4 UUID: its version nibble is 4, the rest random.
        assert_eq!(&hex[44..45], "4", "{hex}");
        assert_ne!(&ids[0][40..], &ids[1][40..]);
    }
}
