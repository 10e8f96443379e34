//! `cron_expression` of `[[trigger.cron]]`, as the Spin cron plugin reads it: six or seven
//! fields, seconds first (`sec min hour day-of-month month day-of-week [year]`).

use std::str::FromStr as _;

/// How to write an expression, for errors.
pub const HINT: &str = "write six or seven fields, seconds first: `sec min hour day-of-month month day-of-week [year]`, e.g. \"*/5 * * * * *\" for every 5 seconds or \"0 0 9 * * Mon-Fri\"";

/// Checks `expression`, returning the schedule.
pub fn parse(expression: &str) -> Result<::cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!("it has {fields} fields; Spin's cron trigger takes 6 or 7 (seconds first)"));
    }
    ::cron::Schedule::from_str(expression).map_err(|e| e.to_string())
}

/// Checks `expression`.
pub fn validate(expression: &str) -> Result<(), String> {
    parse(expression).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_required_and_a_year_is_allowed() {
        assert!(validate("*/2 * * * * *").is_ok());
        assert!(validate("0 30 9 * * Mon-Fri 2027").is_ok());
        assert!(validate("* * * * *").unwrap_err().contains("5 fields"));
        assert!(validate("61 * * * * *").is_err());
    }
}
