//! An event-type catalogue: a product's event table, from TOML files. Each profile has one
//! (`profiles/<name>/catalogue.toml`); files given in the configuration replace them all. With
//! neither, the five example products' catalogues, embedded in the binary, make the union that
//! `tocsin serve` starts with. Tenants may add their own types through the API; the configured
//! ones are read-only for them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::domain::event_type::{EventType, EventTypeName, SYSTEM_EVENT_TYPES};

/// The example products' catalogues, by product, as shipped in `profiles/`.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("phishnet", include_str!("../profiles/phishnet/catalogue.toml")),
    ("pentest", include_str!("../profiles/pentest/catalogue.toml")),
    ("netrecon", include_str!("../profiles/netrecon/catalogue.toml")),
    ("selki", include_str!("../profiles/selki/catalogue.toml")),
    ("gophish", include_str!("../profiles/gophish/catalogue.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[allow(dead_code)]
    product: Option<String>,
    #[serde(default)]
    event_type: Vec<FileEventType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEventType {
    name: String,
    description: String,
    schema: Option<toml::Value>,
    example: Option<toml::Value>,
    presentation: Option<toml::Value>,
}

/// The deployment-wide event types, by name, with their schemas compiled once.
#[derive(Clone, Default)]
pub struct Catalogue {
    types: BTreeMap<String, EventType>,
    validators: BTreeMap<String, Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("types", &self.types.len()).finish()
    }
}

fn to_json(v: Option<toml::Value>) -> Option<serde_json::Value> {
    v.and_then(|v| serde_json::to_value(v).ok())
}

impl Catalogue {
    /// Loads `files`, or the embedded examples when there are none.
    pub fn load(files: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        if files.is_empty() {
            sources.extend(EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string())));
        }
        for f in files {
            let path = f.as_ref();
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("catalogue {}: cannot read: {e}", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
        Self::from_sources(sources)
    }

    /// A catalogue of these TOML texts (each named for error messages), plus the system types.
    pub fn from_sources(sources: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut cat = Self::default();
        for (name, text) in sources {
            cat.add_file(&name, &text)?;
        }
        for (name, description) in SYSTEM_EVENT_TYPES {
            cat.types.insert(
                name.to_string(),
                EventType {
                    name: name.to_string(),
                    description: description.to_string(),
                    schema: None,
                    example: None,
                    presentation: None,
                },
            );
        }
        Ok(cat)
    }

    fn add_file(&mut self, source: &str, text: &str) -> anyhow::Result<()> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("catalogue {source}: {}", e.message()))?;
        for et in file.event_type {
            EventTypeName::parse(&et.name, "name").map_err(|e| anyhow::anyhow!("catalogue {source}: {e}"))?;
            if self.types.contains_key(&et.name) {
                anyhow::bail!("catalogue {source}: event type '{}' is defined twice", et.name);
            }
            let schema = to_json(et.schema);
            if let Some(s) = &schema {
                let v = jsonschema::validator_for(s)
                    .map_err(|e| anyhow::anyhow!("catalogue {source}: schema of '{}': {e}", et.name))?;
                self.validators.insert(et.name.clone(), Arc::new(v));
            }
            self.types.insert(
                et.name.clone(),
                EventType {
                    name: et.name,
                    description: et.description,
                    schema,
                    example: to_json(et.example),
                    presentation: to_json(et.presentation),
                },
            );
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    /// The compiled schema of a configured type, if it has one.
    pub fn validator(&self, name: &str) -> Option<Arc<jsonschema::Validator>> {
        self.validators.get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        self.types.values()
    }

    /// The configured types merged with a tenant's own (the configured ones win on a clash).
    pub fn merged(&self, tenant_types: Vec<EventType>) -> Vec<EventType> {
        let mut all = self.types.clone();
        for et in tenant_types {
            all.entry(et.name.clone()).or_insert(et);
        }
        all.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_examples_load() {
        let cat = Catalogue::load(&[] as &[&Path]).unwrap();
        for name in ["email.quarantined", "critical_finding", "alert.created", "THREATS_NEW_THREAT", "webhook.test"] {
            assert!(cat.contains(name), "{name}");
        }
        assert_eq!(cat.get("email.quarantined").unwrap().example.as_ref().unwrap()["phish_score"], 95);
    }

    #[test]
    fn duplicate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(
            &f,
            "[[event_type]]\nname='x.y'\ndescription='d'\n[[event_type]]\nname='x.y'\ndescription='e'\n",
        )
        .unwrap();
        assert!(Catalogue::load(&[f]).unwrap_err().to_string().contains("twice"));
    }
}
