//! NATS subjects, as `[[trigger.messaging]] subject` and `allowed_publish_subjects` write
//! them: tokens separated by `.`, where a pattern may use `*` for one whole token and `>`
//! as the last token for one or more tokens (`orders.*.created`, `events.>`).

/// How to write a subject, for errors.
pub const HINT: &str = "write dot-separated tokens without spaces, e.g. \"orders.created\"; in a pattern `*` stands for one token and a final `>` for the rest (\"orders.*\", \"events.>\")";

/// Why `subject` is not a subject (a pattern when `wildcards`), or `None` if it is one.
pub fn check(subject: &str, wildcards: bool) -> Option<String> {
    if subject.is_empty() {
        return Some("the subject is empty".into());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Some(format!("`{subject}` has an empty token"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Some(format!("`{subject}` contains whitespace"));
        }
        let wildcard = *token == "*" || *token == ">";
        if wildcard && !wildcards {
            return Some(format!("`{subject}` has a wildcard, which only subscriptions and grants may use"));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Some(format!("`{subject}` has `>` before its last token"));
        }
        if !wildcard && (token.contains('*') || token.contains('>')) {
            return Some(format!("`{subject}`: `*` and `>` must be whole tokens"));
        }
    }
    None
}

/// Whether `subject` (no wildcards) is matched by `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        if token == ">" {
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(s) if token == "*" || token == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::{check, matches};

    #[test]
    fn subjects_and_patterns_are_checked() {
        assert_eq!(check("orders.created", false), None);
        assert_eq!(check("orders.*", true), None);
        assert_eq!(check("events.>", true), None);
        assert!(check("orders.*", false).unwrap().contains("wildcard"));
        assert!(check("a..b", true).unwrap().contains("empty token"));
        assert!(check("a.>.b", true).unwrap().contains("before its last"));
        assert!(check("a b", true).unwrap().contains("whitespace"));
        assert!(check("a.b*", true).unwrap().contains("whole tokens"));
        assert!(check("", true).is_some());
    }

    #[test]
    fn patterns_match_as_nats_matches_them() {
        assert!(matches("orders.created", "orders.created"));
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(matches("orders.>", "orders.created.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("*.created", "orders.created"));
        assert!(!matches("orders", "orders.created"));
        assert!(matches(">", "anything.at.all"));
    }
}
