//! API keys of self-hosted models are write-only: sealed with AES-256-GCM (a fresh nonce per
//! value) under a master key, and shown only as a short fingerprint. The id of the master key
//! is stored beside each ciphertext, so master keys can be rotated: the first key seals, any
//! listed key opens. Each sealed key is bound to its model and its endpoint's origin (the
//! cipher's additional data): copied to another row, or left behind a changed endpoint, it no
//! longer opens.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// An API key in the clear. It has no `Serialize` and its `Debug` hides it, so it cannot reach
/// a response or a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(value: String) -> ApiKey {
        ApiKey(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the database keeps of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_id: String,
    pub fingerprint: String,
    /// Sealed with its `KeyBinding` (every key sealed since bindings exist; older ones are
    /// re-sealed bound at start).
    pub bound: bool,
}

/// What a sealed key is bound to: it opens only for this model, at this endpoint origin
/// (scheme, host and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBinding<'a> {
    pub model_id: i64,
    pub origin: &'a str,
}

impl KeyBinding<'_> {
    fn additional_data(&self) -> Vec<u8> {
        format!("duo-admin api key v1\0{}\0{}", self.model_id, self.origin).into_bytes()
    }
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    fingerprint_key: [u8; 32],
}

pub struct MasterKeys {
    /// The first one seals; all of them open.
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|key| key.id.as_str()).collect();
        f.debug_struct("MasterKeys").field("ids", &ids).finish()
    }
}

impl MasterKeys {
    /// `keys` newest first; there must be at least one.
    pub fn new(keys: &[[u8; 32]]) -> Result<MasterKeys, String> {
        if keys.is_empty() {
            return Err("no master key was given".to_owned());
        }
        let keys = keys
            .iter()
            .map(|bytes| MasterKey {
                id: hex(&Sha256::digest(bytes))[..12].to_owned(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
                fingerprint_key: Sha256::new()
                    .chain_update(b"api-key-fingerprint")
                    .chain_update(bytes)
                    .finalize()
                    .into(),
            })
            .collect();
        Ok(MasterKeys { keys })
    }

    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn seal(&self, api_key: &ApiKey, binding: KeyBinding<'_>) -> SealedKey {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload { msg: api_key.expose().as_bytes(), aad: &binding.additional_data() };
        let ciphertext =
            key.cipher.encrypt(&nonce, payload).expect("AES-GCM sealing cannot fail for in-memory data");
        SealedKey {
            ciphertext,
            nonce: nonce.to_vec(),
            key_id: key.id.clone(),
            fingerprint: self.fingerprint(api_key),
            bound: true,
        }
    }

    /// Opens a key for the model and origin it is to be used with; a key bound to another
    /// model or origin does not open.
    pub fn open(&self, sealed: &SealedKey, binding: KeyBinding<'_>) -> Result<ApiKey, String> {
        let key = self.keys.iter().find(|key| key.id == sealed.key_id).ok_or_else(|| {
            format!("the API key was sealed with master key {}, which is not configured", sealed.key_id)
        })?;
        if sealed.nonce.len() != 12 {
            return Err("the stored API key is damaged (bad nonce)".to_owned());
        }
        let aad = if sealed.bound { binding.additional_data() } else { Vec::new() };
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| {
                "the stored API key does not open with its master key for this model and endpoint".to_owned()
            })?;
        String::from_utf8(plain).map(ApiKey).map_err(|_| "the stored API key is damaged".to_owned())
    }

    /// A short keyed hash: tells two keys apart on screen and in the audit trail, and, being
    /// keyed with the master key, cannot be used to guess a key offline.
    pub fn fingerprint(&self, api_key: &ApiKey) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.keys[0].fingerprint_key)
            .expect("HMAC takes keys of any length");
        mac.update(api_key.expose().as_bytes());
        hex(&mac.finalize().into_bytes())[..8].to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: KeyBinding<'static> = KeyBinding { model_id: 1, origin: "http://vllm:8000" };

    #[test]
    fn a_sealed_key_opens_and_every_seal_uses_a_fresh_nonce() {
        let keys = MasterKeys::new(&[[7; 32]]).unwrap();
        let api_key = ApiKey::new("sk-planted-123".into());

        let first = keys.seal(&api_key, HERE);
        let second = keys.seal(&api_key, HERE);

        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(keys.open(&first, HERE).unwrap(), api_key);
        assert!(!String::from_utf8_lossy(&first.ciphertext).contains("planted"));
    }

    #[test]
    fn a_rotated_master_key_still_opens_old_values_and_seals_new_ones() {
        let old = MasterKeys::new(&[[1; 32]]).unwrap();
        let sealed_before = old.seal(&ApiKey::new("secret".into()), HERE);
        let rotated = MasterKeys::new(&[[2; 32], [1; 32]]).unwrap();

        assert_eq!(rotated.open(&sealed_before, HERE).unwrap().expose(), "secret");
        assert_ne!(rotated.seal(&ApiKey::new("secret".into()), HERE).key_id, sealed_before.key_id);
        let without_old = MasterKeys::new(&[[2; 32]]).unwrap();
        assert!(without_old.open(&sealed_before, HERE).unwrap_err().contains("not configured"));
    }

    #[test]
    fn a_tampered_ciphertext_does_not_open() {
        let keys = MasterKeys::new(&[[3; 32]]).unwrap();
        let mut sealed = keys.seal(&ApiKey::new("secret".into()), HERE);
        sealed.ciphertext[0] ^= 1;
        assert!(keys.open(&sealed, HERE).is_err());
    }

    #[test]
    fn a_key_opens_only_for_its_own_model_and_endpoint_origin() {
        let keys = MasterKeys::new(&[[4; 32]]).unwrap();
        let sealed = keys.seal(&ApiKey::new("secret".into()), HERE);
        assert!(keys.open(&sealed, KeyBinding { model_id: 2, ..HERE }).is_err(), "copied to another row");
        assert!(keys.open(&sealed, KeyBinding { origin: "http://attacker:80", ..HERE }).is_err());
        assert_eq!(keys.open(&sealed, HERE).unwrap().expose(), "secret");
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let api_key = ApiKey::new("sk-planted-123".into());
        assert!(!format!("{api_key:?}").contains("planted"));
        let keys = MasterKeys::new(&[[3; 32]]).unwrap();
        assert!(!format!("{keys:?}").contains("3, 3"));
    }
}
