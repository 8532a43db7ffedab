//! Regular expressions as Envoy runs them: Google RE2. A pattern must compile
//! with the `regex` crate and use nothing RE2 lacks (look-around,
//! backreferences, possessive quantifiers), which some other engines accept.
//!
//! As Istio does, a pattern is also limited to 1024 bytes: Envoy limits the
//! compiled RE2 program size, which is always larger than the pattern, and
//! the agent's bootstrap raises that limit so that no pattern within this
//! length is refused. An empty pattern is refused too, as Istio refuses it.

use crate::diag::{Diagnostic, FieldPath};

/// The longest pattern Istio's validation accepts, in bytes.
pub(super) const MAX_REGEX_LEN: usize = 1024;

/// Reports `pattern` at `path` if Envoy would refuse it.
pub(super) fn check_regex(pattern: &str, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    if pattern.is_empty() {
        out.push(Diagnostic::error(path.clone(), "regex must not be empty"));
        return;
    }
    if pattern.len() > MAX_REGEX_LEN {
        out.push(Diagnostic::error(
            path.clone(),
            format!(
                "regex is too large: {} bytes, at most {MAX_REGEX_LEN} are allowed",
                pattern.len()
            ),
        ));
        return;
    }
    if let Some(found) = unsupported_construct(pattern) {
        out.push(Diagnostic::error(path.clone(), found));
        return;
    }
    if let Err(e) = regex::Regex::new(pattern) {
        out.push(Diagnostic::error(
            path.clone(),
            format!("invalid regular expression: {}", one_line(&e.to_string())),
        ));
    }
}

/// The first construct RE2 does not support, described for the user.
fn unsupported_construct(pattern: &str) -> Option<String> {
    for group in ["(?=", "(?!", "(?<=", "(?<!"] {
        if let Some(at) = find_unescaped(pattern, group) {
            return Some(format!(
                "RE2 (Envoy) does not support look-around/backreferences: found {group:?} at byte {at}"
            ));
        }
    }
    let chars: Vec<(usize, char)> = pattern.char_indices().collect();
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let next = chars.get(i + 1).map(|&(_, n)| n);
        match c {
            '\\' => {
                if !in_class && let Some(d @ '1'..='9') = next {
                    return Some(format!(
                        "RE2 (Envoy) does not support look-around/backreferences: found \"\\{d}\" at byte {at}"
                    ));
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                // A `]` first in the class (after an optional `^`) is literal.
                let mut j = i + 1;
                if chars.get(j).map(|&(_, c)| c) == Some('^') {
                    j += 1;
                }
                if chars.get(j).map(|&(_, c)| c) == Some(']') {
                    j += 1;
                }
                i = j;
                continue;
            }
            '[' if in_class && next == Some(':') => {
                // A POSIX class such as `[:alpha:]`, which RE2 has too.
                match chars[i..].iter().position(|&(_, c)| c == ']') {
                    Some(end) => i += end + 1,
                    None => i += 1,
                }
                continue;
            }
            '[' if in_class => {
                return Some(format!(
                    "RE2 (Envoy) has no nested character classes: \"[\" at byte {at} is a literal there but a nested class here; escape it as \"\\[\""
                ));
            }
            '&' | '-' | '~' if in_class && next == Some(c) => {
                return Some(format!(
                    "RE2 (Envoy) has no character class set operations: \"{c}{c}\" at byte {at} is literal there; escape it"
                ));
            }
            ']' if in_class => in_class = false,
            '*' | '+' | '?' | '}' if !in_class && next == Some('+') => {
                return Some(format!(
                    "RE2 (Envoy) does not support possessive quantifiers: found \"{c}+\" at byte {at}"
                ));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The byte offset of `needle` in `pattern` where it is not escaped by a
/// backslash and not inside a character class.
fn find_unescaped(pattern: &str, needle: &str) -> Option<usize> {
    let mut escaped = false;
    let mut in_class = false;
    for (at, c) in pattern.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if !in_class && pattern[at..].starts_with(needle) => return Some(at),
            _ => {}
        }
    }
    None
}

/// The regex crate's errors span several lines with a caret diagram; a
/// diagnostic is one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str) -> Vec<String> {
        let mut out = Vec::new();
        check_regex(pattern, &FieldPath::new("r"), &mut out);
        out.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn re2_patterns_pass() {
        for ok in [
            "^/api/v[0-9]+$",
            ".*\\.example\\.com",
            "a+?b*?",
            "[(?=]",
            "\\(\\?=",
            "x{2,3}",
            "(?i)abc",
            "(?P<id>[0-9]+)",
            "[+*]+",
        ] {
            assert_eq!(check(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn look_around_backreferences_and_possessives_are_named() {
        assert_eq!(
            check("foo(?=bar)"),
            vec![
                "RE2 (Envoy) does not support look-around/backreferences: found \"(?=\" at byte 3"
            ]
        );
        assert!(check("(?!x)")[0].contains("\"(?!\""));
        assert!(check("(?<=x)y")[0].contains("\"(?<=\""));
        assert!(check("(?<!x)y")[0].contains("\"(?<!\""));
        assert_eq!(
            check("(a)\\1"),
            vec![
                "RE2 (Envoy) does not support look-around/backreferences: found \"\\1\" at byte 3"
            ]
        );
        assert_eq!(
            check("a*+b"),
            vec!["RE2 (Envoy) does not support possessive quantifiers: found \"*+\" at byte 1"]
        );
        assert!(check("a{2}+")[0].contains("possessive"));
    }

    #[test]
    fn classes_that_mean_something_else_in_re2_are_refused() {
        for pattern in ["[a[bc]]", "[a-z&&[^aeiou]]", "[a--b]", "[a~~b]"] {
            let found = check(pattern);
            assert_eq!(found.len(), 1, "{pattern}: {found:?}");
            assert!(
                found[0].contains("RE2 (Envoy) has no"),
                "{pattern}: {found:?}"
            );
        }
        for pattern in [
            "[[:alpha:]]+",
            "[]a]",
            "[^]a]",
            "[a\\[]",
            "[a-z]-[0-9]",
            "a&&b",
        ] {
            assert_eq!(check(pattern), Vec::<String>::new(), "{pattern}");
        }
    }

    #[test]
    fn patterns_over_1024_bytes_and_empty_ones_are_refused() {
        let longest = "a".repeat(MAX_REGEX_LEN);
        assert_eq!(check(&longest), Vec::<String>::new());
        assert_eq!(
            check(&format!("{longest}b")),
            vec!["regex is too large: 1025 bytes, at most 1024 are allowed"]
        );
        assert_eq!(check(""), vec!["regex must not be empty"]);
    }

    #[test]
    fn other_errors_come_from_the_regex_crate_on_one_line() {
        let found = check("([a-z]");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("invalid regular expression: "),
            "{found:?}"
        );
        assert!(!found[0].contains('\n'));
    }
}
