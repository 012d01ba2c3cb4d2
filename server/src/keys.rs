//! The master keys that seal models' API keys: from `ENCRYPTION_KEYS` when given, else from a
//! key file generated in the data directory at the first start (mode 0600).

use std::path::Path;

use anyhow::{Context, bail};
use app::models::secrets::MasterKeys;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

pub const KEY_FILE: &str = "encryption_key";

/// `configured`: base64 32-byte keys separated by commas, newest first. The newest seals new
/// values; the others still open values sealed before a rotation.
pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<MasterKeys> {
    let encoded: Vec<String> = match configured {
        Some(list) => {
            list.split(',').map(|key| key.trim().to_owned()).filter(|key| !key.is_empty()).collect()
        }
        None => vec![read_or_create_key_file(&data_dir.join(KEY_FILE))?],
    };
    let mut keys = Vec::with_capacity(encoded.len());
    for (position, key) in encoded.iter().enumerate() {
        let bytes = STANDARD.decode(key).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        let Some(bytes) = bytes else {
            bail!(
                "ENCRYPTION_KEYS: key {} is not 32 bytes in base64. Make one with `openssl rand -base64 32`.",
                position + 1
            );
        };
        keys.push(bytes);
    }
    MasterKeys::new(&keys).map_err(anyhow::Error::msg)
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        // Checked for owner and mode 0600: a key others could read may have leaked.
        return crate::users::read_private_file(path)
            .map(|text| text.trim().to_owned())
            .with_context(|| format!("refusing the key file {}", path.display()));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let encoded = STANDARD.encode(bytes);
    crate::users::write_private_file(path, &format!("{encoded}\n"))?;
    tracing::info!(file = %path.display(), "generated the master key for API keys; back it up with the database");
    Ok(encoded)
}
