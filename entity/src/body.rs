//! Bodies kept in logs (SPEC §8): at most 10 KB, cut on a character boundary, with a
//! visible marker. One rule for the engine that stores response bodies and for the service
//! that shows request bodies rebuilt from the event.

/// SPEC §8: bodies kept in logs are cut here, with a visible marker.
pub const BODY_LIMIT: usize = 10 * 1024;
pub const TRUNCATION_MARKER: &str = "\n…[truncated at 10 KB]";

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    let cut = (0..=max.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    &text[..cut]
}

/// Cuts `text` to at most `max` bytes, on a character boundary; true when anything was cut.
pub fn truncate_at_char_boundary(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let cut = cut_at_char_boundary(text, max).len();
    text.truncate(cut);
    true
}

/// A body as kept in the attempt log: at most 10 KB, with the marker when cut.
pub fn truncate_body(body: &str) -> String {
    if body.len() <= BODY_LIMIT {
        return body.to_owned();
    }
    format!("{}{TRUNCATION_MARKER}", cut_at_char_boundary(body, BODY_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_never_splits_a_character() {
        assert_eq!(cut_at_char_boundary("aé", 2), "a"); // é is 2 bytes: bytes 1..3
        assert_eq!(cut_at_char_boundary("aé", 3), "aé");
        assert_eq!(cut_at_char_boundary("abc", 10), "abc");
    }

    #[test]
    fn truncating_in_place_keeps_whole_characters_and_says_whether_it_cut() {
        let mut text = "aéb".to_owned();
        assert!(truncate_at_char_boundary(&mut text, 2));
        assert_eq!(text, "a");
        let mut short = "abc".to_owned();
        assert!(!truncate_at_char_boundary(&mut short, 3));
        assert_eq!(short, "abc");
    }

    #[test]
    fn bodies_over_10_kb_are_cut_with_the_marker_and_others_kept_whole() {
        let small = "x".repeat(BODY_LIMIT);
        assert_eq!(truncate_body(&small), small);
        let big = "é".repeat(BODY_LIMIT); // 20 KB
        let cut = truncate_body(&big);
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert_eq!(cut.len() - TRUNCATION_MARKER.len(), BODY_LIMIT);
    }
}
