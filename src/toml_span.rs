//! Turning TOML errors into [`ConfigProblem`]s that name the file, the line, the column
//! and the key, for both app.toml and cluster.toml.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{ConfigProblem, Error, Location};

/// The contents of a configuration file as text; a file that is not UTF-8 (a binary
/// file, another encoding) is a [`ConfigProblem`] that points at the first bad byte.
pub fn text_of(file: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|err| {
        let bytes = err.as_bytes();
        let at = err.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        Error::config(ConfigProblem {
            file: file.to_path_buf(),
            key: String::new(),
            problem: format!(
                "the file is not UTF-8 text (byte 0x{:02x} at offset {at})",
                bytes[at]
            ),
            fix: Some(format!(
                "`{}` must be TOML text saved as UTF-8: restore it (from version control or a backup), or save it again as UTF-8",
                file.display()
            )),
            location: Some(location_of(valid, at)),
        })
    })
}

/// Parses `text` (the contents of `file`) into `T`, mapping any error to a
/// [`ConfigProblem`] with the key path and position.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|err| Error::config(problem_from_toml(file, text, &err)))
}

/// Builds a [`ConfigProblem`] from a toml error: message, key path, position and a fix.
///
/// toml's messages are good but leave gaps this fills: "duplicate key" and "missing
/// field" do not say which key, an unknown field inside a table is reported against the
/// table, and errors inside `[[array]]` tables carry no index.
pub fn problem_from_toml(file: &Path, text: &str, err: &toml::de::Error) -> ConfigProblem {
    // toml keeps the key path private but prints it as "in `a.b`" when it has no input.
    let mut bare = err.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let mut key = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|r| r.strip_suffix('`')))
        .unwrap_or("")
        .to_string();
    let offset = err.span().map(|s| s.start);
    if let Some(offset) = offset {
        key = index_array_tables(text, &key, offset);
    }
    let location = offset.map(|o| location_of(text, o));
    let mut message = err.message().trim().to_string();
    let join = |key: &str, leaf: &str| {
        if key.is_empty() {
            leaf.to_string()
        } else {
            format!("{key}.{leaf}")
        }
    };
    let fix;
    if let Some(field) = backticked_after(&message, "unknown field `") {
        let known = message
            .split_once(", expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").to_string());
        let names: Vec<String> = known
            .as_deref()
            .unwrap_or("")
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        fix = Some(match (closest(&field, &names), known) {
            (Some(best), _) => format!("did you mean `{best}`? otherwise remove `{field}`"),
            (None, Some(known)) => format!("remove `{field}`; the known keys here are {known}"),
            (None, None) => format!("remove `{field}`"),
        });
        key = join(&key, &field);
    } else if let Some(field) = backticked_after(&message, "missing field `") {
        fix = Some(format!("add `{field} = ...`"));
        key = join(&key, &field);
    } else if message.starts_with("duplicate key") {
        let dup = offset.map(|o| key_text_at(text, o)).unwrap_or_default();
        if !dup.is_empty() {
            message = format!("duplicate key `{dup}`");
            key = join(&key, &dup);
        }
        fix = Some("keep only one of the two entries".to_string());
    } else if let Some((_, expected)) = message.split_once("expected one of ")
        && message.starts_with("unknown variant")
    {
        fix = Some(format!("use one of {expected}"));
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        fix = message
            .rsplit_once(", expected ")
            .map(|(_, expected)| format!("write {} here", plain_expected(expected)));
    } else {
        fix = Some("fix the TOML syntax at the position shown".to_string());
    }
    ConfigProblem {
        file: file.to_path_buf(),
        key,
        problem: message,
        fix,
        location,
    }
}

/// serde's names for expected types, in words a person editing TOML knows.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let max = match expected {
                "u8" => u8::MAX as u64,
                "u16" => u16::MAX as u64,
                "u32" => u32::MAX as u64,
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "a sequence" => "an array, e.g. [\"a\", \"b\"]".into(),
        "a map" | "struct" => "a table".into(),
        "a boolean" => "true or false".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

/// The text between `prefix` and the next backtick, when `message` starts with `prefix`.
fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    message
        .strip_prefix(prefix)
        .and_then(|r| r.split('`').next())
        .map(str::to_string)
}

/// The bare or quoted key written at byte `offset` (for "duplicate key").
fn key_text_at(text: &str, offset: usize) -> String {
    let rest = text.get(offset..).unwrap_or("");
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next().unwrap_or("").to_string();
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The 1-based line and column of byte `offset` in `text`.
pub fn location_of(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    Location { line, column }
}

/// A table key as written in a dotted key path: bare when TOML allows, else quoted
/// (`apps."blog.example.com"`), so [`find_key`] can find it again.
pub fn quote_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// One step of a dotted key path: a table key, optionally indexed into an array.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: String,
    index: Option<usize>,
}

/// Splits `a."b.c"[2].d` into segments; quotes protect dots (host names as keys).
fn split_key(dotted: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chars = dotted.chars().peekable();
    while chars.peek().is_some() {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                name.push(c);
            }
        }
        while let Some(&c) = chars.peek() {
            if c == '.' || c == '[' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut index = None;
        if chars.peek() == Some(&'[') {
            chars.next();
            let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
            index = digits.parse().ok();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
        }
        out.push(Segment { name, index });
    }
    out
}

/// Rewrites toml's key path in skiff's form: table keys quoted where needed (toml
/// prints `apps.blog.example.com.name`, ambiguous) and `[i]` added to arrays of tables,
/// picking the entry that holds byte `offset` (toml reports `cron` where `cron[1]` is
/// meant). Parts not found in the document are kept as given.
fn index_array_tables(text: &str, key: &str, offset: usize) -> String {
    if key.is_empty() {
        return String::new();
    }
    let (doc, _) = toml::de::DeTable::parse_recoverable(text);
    let mut table = Some(doc.get_ref());
    let parts: Vec<String> = split_key(key).into_iter().map(|s| s.name).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        // The shortest run of parts that names a key in this table (toml does not quote).
        let found = table.and_then(|t| {
            (i + 1..=parts.len()).find_map(|j| {
                let name = parts[i..j].join(".");
                t.iter()
                    .find(|(k, _)| k.get_ref() == &name)
                    .map(|(_, v)| (j, name, v))
            })
        });
        let Some((j, name, value)) = found else {
            out.push(quote_key(&parts[i]));
            table = None;
            i += 1;
            continue;
        };
        i = j;
        let mut shown = quote_key(&name);
        table = None;
        match value.get_ref() {
            toml::de::DeValue::Array(items) => {
                let pick = items
                    .iter()
                    .enumerate()
                    .rfind(|(_, item)| item.span().start <= offset && item.get_ref().is_table());
                if let Some((n, item)) = pick {
                    shown.push_str(&format!("[{n}]"));
                    table = item.get_ref().as_table();
                }
            }
            toml::de::DeValue::Table(t) => table = Some(t),
            _ => {}
        }
        out.push(shown);
    }
    out.join(".")
}

/// Position of a dotted key (`health.timeout`, `cron[1].schedule`, `hostnames[2]`,
/// `apps."blog.example.com".current`) in `text`, for problems found after parsing.
///
/// Points at the value (a table's header, an array's element); when the key is not in
/// the file (a default), at the nearest enclosing table that is; `None` when nothing is.
pub fn find_key(text: &str, dotted: &str) -> Option<Location> {
    let (doc, _) = toml::de::DeTable::parse_recoverable(text);
    let mut table = doc.get_ref();
    let mut best = None;
    for seg in split_key(dotted) {
        let Some(value) = table
            .iter()
            .find(|(k, _)| k.get_ref() == &seg.name)
            .map(|(_, v)| v)
        else {
            break;
        };
        let mut value = value;
        best = Some(value.span().start);
        if let Some(i) = seg.index {
            match value.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(item) => {
                    value = item;
                    best = Some(item.span().start);
                }
                None => break,
            }
        }
        match value.get_ref().as_table() {
            Some(t) => table = t,
            None => break,
        }
    }
    best.map(|o| location_of(text, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let t = "a = 1\n[health]\npath = \"/\"\ntimeout = 30\n";
        assert_eq!(
            find_key(t, "health.timeout"),
            Some(Location {
                line: 4,
                column: 11
            })
        );
        assert_eq!(find_key(t, "a"), Some(Location { line: 1, column: 5 }));
        // A default that is not written: the enclosing table.
        assert_eq!(
            find_key(t, "health.other"),
            Some(Location { line: 2, column: 1 })
        );
        assert_eq!(find_key(t, "python"), None);
        let c = "[[cron]]\nschedule = \"x\"\n[[cron]]\nschedule = \"y\"\n";
        assert_eq!(
            find_key(c, "cron[1].schedule"),
            Some(Location {
                line: 4,
                column: 12
            })
        );
        let h = "hostnames = [\"a.test\",\n  \"b.test\"]\n[apps.\"b.test\"]\nname = \"x\"\n";
        assert_eq!(
            find_key(h, "hostnames[1]"),
            Some(Location { line: 2, column: 3 })
        );
        assert_eq!(
            find_key(h, "apps.\"b.test\".name"),
            Some(Location { line: 4, column: 8 })
        );
        assert_eq!(
            find_key(h, "apps.\"b.test\""),
            Some(Location { line: 3, column: 1 })
        );
    }

    #[test]
    fn split_keys() {
        let s = split_key("apps.\"a.b\".versions[2].number");
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["apps", "a.b", "versions", "number"]);
        assert_eq!(s[2].index, Some(2));
    }

    #[test]
    fn typo_suggestions() {
        let known = ["path".to_string(), "timeout".to_string()];
        assert_eq!(closest("timout", &known).as_deref(), Some("timeout"));
        assert_eq!(closest("zzzzzz", &known), None);
    }

    #[test]
    fn toml_error_names_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            port: u16,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        let text = "[inner]\nport = \"x\"\n";
        let err = parse::<Outer>(Path::new("f.toml"), text).unwrap_err();
        let Error::Config(p) = err else { panic!() };
        assert_eq!(p.key, "inner.port");
        assert_eq!(p.location.unwrap().line, 2);
    }
}
