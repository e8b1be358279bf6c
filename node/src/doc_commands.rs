//! The command lines a Markdown document shows in its fenced code blocks,
//! as argument lists ready for a command-line parser: what lets the tests of
//! `agora` and `agora-testnet` check that every command README.md gives
//! still parses, so a renamed flag or subcommand cannot leave the README
//! wrong unnoticed.
//!
//! Only whole lines of fenced blocks count (prose quotes commands in part).
//! A line counts when its first word, or the word after `--` of a
//! `cargo run`, is the program, named alone or by a path ending in it.
//! Placeholders are made concrete: `[--flag VALUE]` loses its brackets,
//! `<...address>` and `<...validator>` become an address, `HASH` a block
//! hash, `H` a height. A placeholder nothing here knows is returned as an
//! error, so a new one must be taught here rather than skipped.

/// A command line found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCommand {
    /// Its line number in the document, counting from 1.
    pub line: usize,
    /// The line as written (without its comment).
    pub text: String,
    /// The program's name followed by the arguments, placeholders filled.
    pub args: Vec<String>,
}

/// Why a document's command line could not be made concrete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: no sample value for the placeholder {placeholder:?} in {text:?}")]
pub struct UnknownPlaceholder {
    /// The line number, counting from 1.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// The word not understood.
    pub placeholder: String,
}

/// A sample account or validator address (20 bytes in hex).
const SAMPLE_ADDRESS: &str = "00112233445566778899aabbccddeeff00112233";
/// A sample block hash (32 bytes in hex).
const SAMPLE_HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// A sample height.
const SAMPLE_HEIGHT: &str = "7";

/// Every command line of `program` in `markdown`'s fenced code blocks.
pub fn command_lines(markdown: &str, program: &str) -> Result<Vec<DocCommand>, UnknownPlaceholder> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (i, raw) in markdown.lines().enumerate() {
        if raw.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        let text = without_comment(raw).trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some(start) = program_position(&words, program) else {
            continue;
        };
        let mut args = vec![program.to_string()];
        for w in &words[start + 1..] {
            let w = w.trim_start_matches('[').trim_end_matches(']');
            if w.is_empty() {
                continue;
            }
            args.push(concrete(w).ok_or_else(|| UnknownPlaceholder {
                line: i + 1,
                text: text.to_string(),
                placeholder: w.to_string(),
            })?);
        }
        found.push(DocCommand {
            line: i + 1,
            text: text.to_string(),
            args,
        });
    }
    Ok(found)
}

/// The lines `parse` refuses, each as "line N: TEXT" and the parser's
/// reason: what a test of a document's commands reports.
pub fn refused<E: std::fmt::Display>(
    lines: &[DocCommand],
    parse: impl Fn(&[String]) -> Result<(), E>,
) -> Vec<String> {
    lines
        .iter()
        .filter_map(|c| {
            parse(&c.args)
                .err()
                .map(|e| format!("line {}: {}\n{e}", c.line, c.text))
        })
        .collect()
}

/// The line before a shell comment (a `#` that starts a word).
fn without_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

/// Where `program` stands in a line's words: first (alone or as a path),
/// or right after the `--` of a `cargo run`.
fn program_position(words: &[&str], program: &str) -> Option<usize> {
    let names = |w: &str| w == program || w.ends_with(&format!("/{program}"));
    match words.first() {
        Some(w) if names(w) => Some(0),
        Some(&"cargo") if words.get(1) == Some(&"run") => {
            let dashes = words.iter().position(|w| *w == "--")?;
            let package = words.windows(2).any(|p| p[0] == "-p" && p[1] == program);
            package.then_some(dashes)
        }
        _ => None,
    }
}

/// A word with its placeholder made concrete; `None` for a placeholder
/// with no sample here.
fn concrete(word: &str) -> Option<String> {
    if let Some(inner) = word.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
        let address = inner.ends_with("address") || inner.ends_with("validator");
        return address.then(|| SAMPLE_ADDRESS.to_string());
    }
    if word.contains('<') || word.contains('>') {
        return None;
    }
    Some(match word {
        "H" => SAMPLE_HEIGHT.to_string(),
        "HASH" => SAMPLE_HASH.to_string(),
        _ => word.replace(":HASH", &format!(":{SAMPLE_HASH}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_lines_of_the_program_are_found_and_made_concrete() {
        let md = "intro `agora tx` in prose\n```sh\nagora query delegation <alice-address> <to-validator>   # a comment\n# agora commented out\ncargo run --release -p agora-testnet -- up --dir /tmp/x\ntarget/release/agora audit --trust 5:HASH [--to H]\ngrpcurl agora\n```\nagora outside\n";
        let got = command_lines(md, "agora").unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].line, 3);
        assert_eq!(
            got[0].args,
            [
                "agora",
                "query",
                "delegation",
                SAMPLE_ADDRESS,
                SAMPLE_ADDRESS
            ]
        );
        assert_eq!(
            got[1].args,
            [
                "agora",
                "audit",
                "--trust",
                &format!("5:{SAMPLE_HASH}"),
                "--to",
                SAMPLE_HEIGHT
            ]
        );
        let testnet = command_lines(md, "agora-testnet").unwrap();
        assert_eq!(testnet.len(), 1);
        assert_eq!(testnet[0].args, ["agora-testnet", "up", "--dir", "/tmp/x"]);
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_not_a_skip() {
        let md = "```\nagora query tx <tx-hash>\n```\n";
        let e = command_lines(md, "agora").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.placeholder, "<tx-hash>");
    }
}
