//! The catalog of model families (and, with the features page, of AI-native features), read
//! from `app/features.toml`. The file is compiled into the binary and checked at start.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    Ga,
    Beta,
    Experiment,
}

impl Release {
    /// Shown only while beta models and features are on.
    pub fn needs_beta(self) -> bool {
        self != Release::Ga
    }

    pub fn badge(self) -> Option<&'static str> {
        match self {
            Release::Ga => None,
            Release::Beta => Some("Beta"),
            Release::Experiment => Some("Experiment"),
        }
    }
}

/// A model family, such as "Mistral" or "Claude".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub key: String,
    pub name: String,
    pub release: Release,
}

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use std::collections::HashSet;

    use super::Family;

    pub const CATALOG_FILE: &str = "app/features.toml";
    const CATALOG_TEXT: &str = include_str!("../features.toml");

    #[derive(Debug, Clone, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Catalog {
        pub families: Vec<Family>,
    }

    impl Catalog {
        /// The catalog compiled into this binary.
        pub fn load() -> Result<Catalog, String> {
            Catalog::parse(CATALOG_TEXT)
        }

        pub fn parse(text: &str) -> Result<Catalog, String> {
            let catalog: Catalog =
                toml::from_str(text).map_err(|error| format!("{CATALOG_FILE} cannot be read: {error}"))?;
            let mut seen = HashSet::new();
            for family in &catalog.families {
                if !seen.insert(family.key.as_str()) {
                    return Err(format!(
                        "{CATALOG_FILE}: the family \"{}\" is listed twice. Keep one [[families]] entry per key.",
                        family.key
                    ));
                }
            }
            Ok(catalog)
        }

        pub fn family(&self, key: &str) -> Option<&Family> {
            self.families.iter().find(|family| family.key == key)
        }

        /// Families an admin may pick: GA first, then beta ones while beta is on; each group in
        /// the file's order.
        pub fn selectable_families(&self, beta_enabled: bool) -> Vec<Family> {
            let mut families: Vec<Family> = self
                .families
                .iter()
                .filter(|family| beta_enabled || !family.release.needs_beta())
                .cloned()
                .collect();
            families.sort_by_key(|family| family.release);
            families
        }
    }
}
