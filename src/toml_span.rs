//! Turning TOML errors into [`ConfigProblem`]s that name the file, the line, the column
//! and the key, for both app.toml and cluster.toml.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{ConfigProblem, Error, Location};

/// Parses `text` (the contents of `file`) into `T`, mapping any error to a
/// [`ConfigProblem`] with the key path and position.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|err| Error::config(problem_from_toml(file, text, &err)))
}

/// Builds a [`ConfigProblem`] from a toml error: message, key path and position.
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
    let location = err.span().map(|s| location_of(text, s.start));
    let message = err.message().trim().to_string();
    if key.is_empty()
        && let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
    {
        key = field.to_string();
    }
    let fix = if message.starts_with("unknown field") {
        Some(match message.split_once(", expected") {
            Some((_, expected)) => format!("remove it or use one of the known keys:{expected}"),
            None => "remove it".to_string(),
        })
    } else if message.starts_with("missing field") {
        Some("add the missing key".to_string())
    } else {
        None
    };
    ConfigProblem {
        file: file.to_path_buf(),
        key,
        problem: message,
        fix,
        location,
    }
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

/// Best-effort position of a dotted key (`health.timeout`, `cron[1].schedule`, `env.X`)
/// in `text`, for problems found after parsing. Scans table headers and `key =` lines;
/// returns `None` when the key cannot be found (the message still names it).
pub fn find_key(text: &str, dotted: &str) -> Option<Location> {
    // Split "cron[1].schedule" into table "cron", index 1, leaf "schedule".
    let (table, leaf) = match dotted.rsplit_once('.') {
        Some((t, l)) => (t.to_string(), l.to_string()),
        None => (String::new(), dotted.to_string()),
    };
    let (table_name, index) = match table.split_once('[') {
        Some((name, rest)) => (
            name.to_string(),
            rest.trim_end_matches(']').parse::<usize>().ok(),
        ),
        None => (table.clone(), None),
    };
    let leaf = leaf.split('[').next().unwrap_or(&leaf).to_string();
    let mut current = String::new();
    let mut seen_index: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(h) = trimmed.strip_prefix("[[") {
            current = h.split("]]").next().unwrap_or("").trim().to_string();
            if current == table_name {
                seen_index = Some(seen_index.map_or(0, |i| i + 1));
            }
        } else if let Some(h) = trimmed.strip_prefix('[') {
            current = h.split(']').next().unwrap_or("").trim().to_string();
        } else if let Some((k, _)) = trimmed.split_once('=') {
            let k = k.trim().trim_matches('"');
            let in_table = current == table_name && (index.is_none() || index == seen_index);
            if in_table && k == leaf {
                return Some(location_of(text, offset + indent));
            }
            if current.is_empty() && table_name.is_empty() && k == leaf {
                return Some(location_of(text, offset + indent));
            }
            // dotted keys at top level: `health.timeout = ...`
            if current.is_empty() && k == dotted {
                return Some(location_of(text, offset + indent));
            }
        }
        offset += line.len();
    }
    // Fall back to the table header itself.
    if !table_name.is_empty() {
        let header = format!("[{table_name}]");
        if let Some(pos) = text.find(&header) {
            return Some(location_of(text, pos));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let t = "a = 1\n[health]\npath = \"/\"\ntimeout = 30\n";
        assert_eq!(
            find_key(t, "health.timeout"),
            Some(Location { line: 4, column: 1 })
        );
        assert_eq!(find_key(t, "a"), Some(Location { line: 1, column: 1 }));
        let c = "[[cron]]\nschedule = \"x\"\n[[cron]]\nschedule = \"y\"\n";
        assert_eq!(
            find_key(c, "cron[1].schedule"),
            Some(Location { line: 4, column: 1 })
        );
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
