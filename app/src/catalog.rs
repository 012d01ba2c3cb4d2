//! The catalog of model families, sections and AI-native features, read from
//! `app/features.toml`: GitLab's `feature_metadata.yml` as data. The file is compiled into the
//! binary and checked at start; a mistake stops start-up with the entry and the fix.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[serde(deny_unknown_fields)]
pub struct Family {
    pub key: String,
    pub name: String,
    pub release: Release,
}

/// A group of features on the "AI-native features" tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub key: String,
    pub title: String,
    pub description: String,
    /// Shows GitLab's "More features are available in beta" note whenever beta is off.
    #[serde(default)]
    pub beta_alert: bool,
}

/// An AI-native feature, such as "Code Generation".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub key: String,
    pub title: String,
    pub section: String,
    pub release: Release,
    /// The model families that can serve this feature.
    pub families: Vec<String>,
    pub unit_primitives: Vec<String>,
    /// The feature whose model serves this one while it has none of its own.
    #[serde(default)]
    pub falls_back_to: Option<String>,
}

impl Feature {
    pub fn accepts(&self, family: &str) -> bool {
        self.families.iter().any(|f| f == family)
    }
}

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use std::collections::HashSet;

    use super::{Family, Feature, Section};

    fn unique<'a>(what: &str, table: &str, keys: impl Iterator<Item = &'a str>) -> Result<(), String> {
        let mut seen = HashSet::new();
        for key in keys {
            if !seen.insert(key) {
                return Err(format!(
                    "the {what} \"{key}\" is listed twice. Keep one [[{table}]] entry per key."
                ));
            }
        }
        Ok(())
    }

    pub const CATALOG_FILE: &str = "app/features.toml";
    const CATALOG_TEXT: &str = include_str!("../features.toml");

    #[derive(Debug, Clone, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Catalog {
        pub families: Vec<Family>,
        pub sections: Vec<Section>,
        pub features: Vec<Feature>,
    }

    impl Catalog {
        /// The catalog compiled into this binary.
        pub fn load() -> Result<Catalog, String> {
            Catalog::parse(CATALOG_TEXT)
        }

        pub fn parse(text: &str) -> Result<Catalog, String> {
            let catalog: Catalog =
                toml::from_str(text).map_err(|error| format!("{CATALOG_FILE} cannot be read: {error}"))?;
            catalog.validate().map_err(|problem| format!("{CATALOG_FILE}: {problem}"))?;
            Ok(catalog)
        }

        fn validate(&self) -> Result<(), String> {
            unique("family", "families", self.families.iter().map(|f| f.key.as_str()))?;
            unique("section", "sections", self.sections.iter().map(|s| s.key.as_str()))?;
            unique("feature", "features", self.features.iter().map(|f| f.key.as_str()))?;
            for feature in &self.features {
                let key = &feature.key;
                if !self.sections.iter().any(|section| section.key == feature.section) {
                    return Err(format!(
                        "the feature \"{key}\" names the section \"{}\", which is not listed. Add a [[sections]] entry with that key, or use one of: {}.",
                        feature.section,
                        self.sections.iter().map(|s| s.key.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                if feature.families.is_empty() {
                    return Err(format!(
                        "the feature \"{key}\" accepts no model family. List at least one in its `families`."
                    ));
                }
                if let Some(unknown) = feature.families.iter().find(|family| self.family(family).is_none()) {
                    return Err(format!(
                        "the feature \"{key}\" names the family \"{unknown}\", which is not listed. Add a [[families]] entry with that key, or fix the spelling."
                    ));
                }
                if let Some(target) = &feature.falls_back_to {
                    match self.feature(target) {
                        None => {
                            return Err(format!(
                                "the feature \"{key}\" falls back to \"{target}\", which is not a feature. Fix `falls_back_to` or remove it."
                            ));
                        }
                        Some(other) if other.falls_back_to.is_some() || other.key == *key => {
                            return Err(format!(
                                "the feature \"{key}\" falls back to \"{target}\", which falls back itself. Point `falls_back_to` at a feature that has none."
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            Ok(())
        }

        pub fn feature(&self, key: &str) -> Option<&Feature> {
            self.features.iter().find(|feature| feature.key == key)
        }

        pub fn section(&self, key: &str) -> Option<&Section> {
            self.sections.iter().find(|section| section.key == key)
        }

        /// The features of a section as the page lists them: visible ones only, GA first.
        pub fn visible_features(&self, section: &str, beta_enabled: bool) -> Vec<&Feature> {
            let mut features: Vec<&Feature> = self
                .features
                .iter()
                .filter(|f| f.section == section && (beta_enabled || !f.release.needs_beta()))
                .collect();
            features.sort_by_key(|feature| feature.release);
            features
        }

        pub fn family(&self, key: &str) -> Option<&Family> {
            self.families.iter().find(|family| family.key == key)
        }

        /// Families an admin may pick: GA first, then beta ones while beta is on; each group by
        /// display name, as GitLab sorts them.
        pub fn selectable_families(&self, beta_enabled: bool) -> Vec<Family> {
            let mut families: Vec<Family> = self
                .families
                .iter()
                .filter(|family| beta_enabled || !family.release.needs_beta())
                .cloned()
                .collect();
            families.sort_by(|a, b| (a.release, &a.name).cmp(&(b.release, &b.name)));
            families
        }
    }
}
