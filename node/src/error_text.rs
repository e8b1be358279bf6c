//! An error and its causes as one line for a person, each cause once.
//!
//! The node's error types print their cause inside their own message
//! (`"database {path}: {source}"`), so that a log line with only the
//! error's `Display` still says why; they also expose it as the
//! `source()`. anyhow's `{:#}` prints every message of the chain, so the
//! cause came out twice ("…: TOML parse error at line 72: TOML parse error
//! at line 72"). Here a cause whose text the message before it already
//! holds is left out.

/// `e` and its causes joined by ": ", each cause once.
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut shown = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !shown.is_empty() && shown.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        shown = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Reading {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_message_is_shown_once() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Reading {
            path: "/x",
            source: io,
        })
        .context("starting");
        assert_eq!(
            format!("{e:#}"),
            "starting: reading /x: disk on fire: disk on fire"
        );
        assert_eq!(chain_text(&e), "starting: reading /x: disk on fire");
    }

    #[test]
    fn distinct_causes_are_all_shown() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(chain_text(&e), "outer: middle: inner");
    }
}
