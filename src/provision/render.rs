//! The tera environment for setup-node: every embedded template, autoescaping off (these
//! are shell scripts and config files, not HTML) and an `sh` filter that quotes a value
//! with the one quoting function, so no value reaches a script unquoted.

use std::sync::OnceLock;

use tera::{Context, Kwargs, State, Tera};

use crate::assets;
use crate::error::{Error, Result};

fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_filter("sh", |value: &str, _: Kwargs, _: &State| {
            crate::transport::quote(value)
        });
        for asset in assets::TEMPLATES {
            tera.add_raw_template(asset.path, asset.text())
                .unwrap_or_else(|e| panic!("embedded template `{}` is invalid: {e}", asset.path));
        }
        tera
    })
}

/// Renders the embedded template at `path` (under `templates/`) with `context`.
pub fn render(path: &str, context: &Context) -> Result<String> {
    tera().render(path, context).map_err(|e| Error::Failed {
        message: format!("could not render the embedded template `templates/{path}`: {e}"),
        hint: Some("this is a bug in skiff; please report it".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let _ = tera();
    }
}
