//! A file keyring in the node's home (`keyring.json`, mode 0600), like the
//! Cosmos SDK's `test` backend: secrets are stored unencrypted, so use it for
//! development keys and protect the home directory.
use auth::Signer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("key {0:?} already exists")]
    Exists(String),
    #[error("no key named {0:?} in {1}; `veritraind keys list` shows the keys")]
    Missing(String, String),
    #[error("invalid key name {0:?}: use letters, digits, '-' and '_'")]
    BadName(String),
    #[error("invalid secret: {0}")]
    BadSecret(String),
    #[error("keyring file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("keyring file {0} is corrupt: {1}")]
    Corrupt(String, serde_json::Error),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyEntry {
    pub name: String,
    pub address: String,
    /// Hex of the 32-byte secp256k1 secret.
    pub secret: String,
}

#[derive(Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

pub struct Keyring {
    path: PathBuf,
}

impl Keyring {
    pub fn open(home: &Path) -> Keyring {
        Keyring {
            path: home.join("keyring.json"),
        }
    }

    fn load(&self) -> Result<KeyFile, KeyringError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| KeyringError::Corrupt(self.path.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(e) => Err(KeyringError::Io(self.path.display().to_string(), e)),
        }
    }

    fn save(&self, f: &KeyFile) -> Result<(), KeyringError> {
        let io = |e| KeyringError::Io(self.path.display().to_string(), e);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(f)
            .map_err(|e| KeyringError::Corrupt(self.path.display().to_string(), e))?;
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut file = opts.open(&tmp).map_err(io)?;
            file.write_all(&body).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    pub fn list(&self) -> Result<Vec<KeyEntry>, KeyringError> {
        Ok(self.load()?.keys)
    }

    fn check_name(name: &str) -> Result<(), KeyringError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(KeyringError::BadName(name.to_string()));
        }
        Ok(())
    }

    pub fn add(&self, name: &str, signer: &Signer) -> Result<KeyEntry, KeyringError> {
        Self::check_name(name)?;
        let mut f = self.load()?;
        if f.keys.iter().any(|k| k.name == name) {
            return Err(KeyringError::Exists(name.to_string()));
        }
        let e = KeyEntry {
            name: name.to_string(),
            address: signer.address().to_string(),
            secret: hex::encode(signer.secret_bytes()),
        };
        f.keys.push(e.clone());
        self.save(&f)?;
        Ok(e)
    }

    pub fn import(&self, name: &str, secret_hex: &str) -> Result<KeyEntry, KeyringError> {
        if secret_hex.trim().is_empty() {
            return Err(KeyringError::BadSecret(
                "the secret is empty: expected 64 hex digits".into(),
            ));
        }
        let bytes =
            hex::decode(secret_hex.trim()).map_err(|e| KeyringError::BadSecret(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(KeyringError::BadSecret(format!(
                "the secret is {} bytes, expected 32 (64 hex digits)",
                bytes.len()
            )));
        }
        let s = Signer::from_bytes(&bytes).map_err(|e| KeyringError::BadSecret(e.to_string()))?;
        self.add(name, &s)
    }

    pub fn get(&self, name: &str) -> Result<KeyEntry, KeyringError> {
        self.load()?
            .keys
            .into_iter()
            .find(|k| k.name == name)
            .ok_or_else(|| KeyringError::Missing(name.to_string(), self.path.display().to_string()))
    }

    /// The signer for a key name, or for an address held in the keyring.
    pub fn signer(&self, name_or_address: &str) -> Result<Signer, KeyringError> {
        let f = self.load()?;
        let e = f
            .keys
            .iter()
            .find(|k| k.name == name_or_address || k.address == name_or_address)
            .ok_or_else(|| {
                KeyringError::Missing(name_or_address.to_string(), self.path.display().to_string())
            })?;
        let bytes = hex::decode(&e.secret).map_err(|e| KeyringError::BadSecret(e.to_string()))?;
        Signer::from_bytes(&bytes).map_err(|e| KeyringError::BadSecret(e.to_string()))
    }
}
