//! Loading a deployment: the layered config, then every mapping it enables, then the one
//! checked against the other — the same load for `serve` (and its reloads), `check`,
//! `translate` and the migration commands.

use std::path::Path;

use crate::config::{Config, Flags};
use crate::diagnostic::Diagnostic;
use crate::mapping::MappingSet;

/// Loads config and mappings, or returns every diagnostic.
pub fn load(config: Option<&Path>) -> Result<(Config, MappingSet), Vec<Diagnostic>> {
    load_with(config, &Flags::default())
}

/// Loads config (with command-line overrides) and mappings, or returns every diagnostic.
pub fn load_with(
    config: Option<&Path>,
    flags: &Flags,
) -> Result<(Config, MappingSet), Vec<Diagnostic>> {
    let (cfg, _) = Config::load(config, flags)?;
    let set = MappingSet::load_dir(
        &cfg.mappings.dir,
        cfg.mappings.enabled.as_deref(),
        &cfg.mapping_vars(),
    )?;
    let mut diags = Vec::new();
    for (i, c) in cfg.credentials.iter().enumerate() {
        if c.dialect != "scim" && set.get(&c.dialect).is_none() {
            diags.push(Diagnostic::file(
                config.unwrap_or(Path::new(crate::config::DEFAULT_FILE)),
                format!(
                    "credentials[{i}] ({}) names dialect `{}`, which no mapping defines (nor is it `scim`, for /scim/v2)",
                    c.name, c.dialect
                ),
            ));
        }
    }
    if diags.is_empty() {
        Ok((cfg, set))
    } else {
        Err(diags)
    }
}
