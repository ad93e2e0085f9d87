//! The format of the environment files skiff keeps on nodes (`/etc/skiff/env/APP.env`,
//! each release's `env/N.env` snapshot and `env/N.run`, and the `[env]` lines a deploy
//! sends): one `KEY=VALUE` line per variable, the value escaped so that any text
//! survives exactly, newlines included. A backslash is written `\\`, a line feed `\n`, a
//! carriage return `\r`; nothing else is escaped (quotes, `$()`, `=` and non-ASCII are
//! plain bytes, never seen by a shell). Every reader decodes the same way: node.sh
//! `release_env` and `skiff-run` through `printf %b` (which knows exactly these escapes
//! once every backslash is doubled), the Python, Ruby and PHP slot loaders with their own
//! few lines, and `skiff config list` here. A NUL cannot be in a process environment, so
//! it is refused before anything is written.

/// One value as it is written after `KEY=` on a line.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The value a line's text after `KEY=` stands for. An escape skiff never writes (a lone
/// backslash before another character) is kept as it is, as `printf %b` keeps it.
pub fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `KEY=VALUE` lines for these variables, values encoded.
pub fn lines<'a>(vars: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    vars.into_iter()
        .map(|(k, v)| format!("{k}={}\n", encode(v)))
        .collect()
}

/// The variables of an env file's text (blank lines and `#` comments skipped), decoded.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_survives_on_one_line() {
        for v in [
            "",
            "plain",
            "a\nb",
            "line\r\n",
            "back\\slash\\n not a newline",
            "\\",
            "quotes \"' $(id) `id` a=b=c",
            "non-ASCII é ü 漢字 🚀",
            "  spaces around  ",
            "#not a comment",
        ] {
            let e = encode(v);
            assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
            assert_eq!(decode(&e), v, "{e:?}");
        }
    }

    #[test]
    fn parse_reads_lines_and_decodes() {
        let vars = parse("# comment\nA=1\n\nB=x\\ny\nC=a=b\n");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x\ny".into()),
                ("C".into(), "a=b".into())
            ]
        );
    }

    #[test]
    fn unknown_escapes_stay_as_written() {
        assert_eq!(decode("C:\\path\\"), "C:\\path\\");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any text survives `encode` then `decode`, and is written on one line.
        #[test]
        fn encode_decode_round_trips(value in ".*", noise in "[\\\\nr\n\r]{0,12}") {
            for v in [value.clone(), format!("{noise}{value}{noise}")] {
                let e = encode(&v);
                proptest::prop_assert!(!e.contains('\n') && !e.contains('\r'), "{:?}", e);
                proptest::prop_assert_eq!(decode(&e), v);
            }
        }
    }
}
