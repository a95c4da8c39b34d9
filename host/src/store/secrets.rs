//! Provider keys at rest: XChaCha20-Poly1305 under the master key, a random nonce each,
//! and the credential id as associated data, so a ciphertext copied to another row does
//! not decrypt.

use super::StoreError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use std::path::{Path, PathBuf};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The master key. Its Debug output never shows the key.
#[derive(Clone)]
pub struct Cipher {
    key: Key,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

fn aad(credential_id: i64) -> Vec<u8> {
    format!("aihub-credential:{credential_id}").into_bytes()
}

impl Cipher {
    pub fn generate() -> Self {
        Cipher {
            key: XChaCha20Poly1305::generate_key(&mut OsRng),
        }
    }

    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| StoreError::Crypto("the master key is not valid base64".into()))?;
        if bytes.len() != 32 {
            return Err(StoreError::Crypto(format!(
                "the master key must be 32 bytes (base64 of 32 random bytes), got {}",
                bytes.len()
            )));
        }
        Ok(Cipher {
            key: *Key::from_slice(&bytes),
        })
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.key.as_slice())
    }

    pub fn encrypt(&self, credential_id: i64, plaintext: &str) -> Result<Vec<u8>, StoreError> {
        let cipher = XChaCha20Poly1305::new(&self.key);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(credential_id);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn decrypt(&self, credential_id: i64, blob: &[u8]) -> Result<String, StoreError> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != VERSION {
            return Err(StoreError::Crypto(format!(
                "credential {credential_id}: unreadable secret"
            )));
        }
        let nonce = XNonce::from_slice(&blob[1..1 + NONCE_LEN]);
        let aad = aad(credential_id);
        let pt = XChaCha20Poly1305::new(&self.key)
            .decrypt(nonce, Payload { msg: &blob[1 + NONCE_LEN..], aad: &aad })
            .map_err(|_| {
                StoreError::Crypto(format!(
                    "credential {credential_id}: secret does not decrypt (wrong master key, or copied from another row)"
                ))
            })?;
        String::from_utf8(pt).map_err(|_| {
            StoreError::Crypto(format!("credential {credential_id}: secret is not UTF-8"))
        })
    }
}

/// How many stored secrets a key is tried on.
pub const PROBE_ROWS: usize = 20;

/// Whether `cipher` is the key the secrets were stored under: true when any of the
/// sampled secrets opens (one damaged row must not stop the server), `None` when there
/// are none.
pub fn probe(sample: &[(i64, Vec<u8>)], cipher: &Cipher) -> Option<bool> {
    (!sample.is_empty()).then(|| {
        sample
            .iter()
            .any(|(id, blob)| cipher.decrypt(*id, blob).is_ok())
    })
}

/// The masked form operators see: `sk-...abcd`.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "****".into();
    }
    // Keep a scheme prefix such as `sk-`, else three characters.
    let head_len = chars
        .iter()
        .take(5)
        .position(|c| *c == '-' || *c == '_')
        .map(|i| i + 1)
        .unwrap_or(3);
    let head: String = chars[..head_len].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key")
}

/// A new key written during rotation, before the database commit.
pub fn pending_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key.new")
}

/// Writes a key file readable by its owner only.
pub fn write_key_file(path: &Path, cipher: &Cipher) -> Result<(), StoreError> {
    use std::io::Write;
    let io =
        |e: std::io::Error| StoreError::Crypto(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(cipher.to_base64().as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Where the master key came from decides how rotation persists the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

/// The master key from `AIHUB_MASTER_KEY` (config `master_key`), else `<data_dir>/master.key`,
/// made on first start. `probe` tries a key on the stored secrets (`None`: there are none),
/// to finish an interrupted rotation the right way round and to refuse to make a new key
/// while secrets under another one are stored.
pub fn load_master_key(
    data_dir: &Path,
    configured: Option<&str>,
    probe: impl Fn(&Cipher) -> Result<Option<bool>, StoreError>,
) -> Result<(Cipher, KeySource), StoreError> {
    if let Some(text) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((Cipher::from_base64(text)?, KeySource::Env));
    }
    let path = key_file(data_dir);
    let pending = pending_key_file(data_dir);
    let read = |p: &Path| -> Result<Cipher, StoreError> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| StoreError::Crypto(format!("cannot read {}: {e}", p.display())))?;
        Cipher::from_base64(&text)
    };
    if pending.exists() {
        // A rotation stopped between its commit and the final rename.
        let new = read(&pending)?;
        let current = if path.exists() {
            Some(read(&path)?)
        } else {
            None
        };
        let try_key = |c: &Cipher| probe(c).ok().flatten();
        let old_works = current.as_ref().and_then(try_key).unwrap_or(false);
        if !old_works && try_key(&new) != Some(false) {
            std::fs::rename(&pending, &path).map_err(|e| StoreError::Crypto(e.to_string()))?;
            tracing::warn!("finished an interrupted master key rotation");
        } else {
            let _ = std::fs::remove_file(&pending);
            tracing::warn!("discarded the key of a master key rotation that did not commit");
        }
    }
    if path.exists() {
        return Ok((read(&path)?, KeySource::File(path)));
    }
    // A new key is made only for a database without secrets: one made now could never
    // open stored ones, and left on disk it would hide the real key's absence at the next
    // start (and be mistaken for it in a backup).
    let cipher = Cipher::generate();
    let stored = probe(&cipher).map_err(|e| {
        StoreError::Crypto(format!(
            "cannot tell whether provider keys are stored ({e}); no new master key was written"
        ))
    })?;
    if stored.is_some() {
        return Err(StoreError::Crypto(format!(
            "provider keys are stored, but the master key they are encrypted under is missing: {} does not exist and AIHUB_MASTER_KEY is not set. Restore the key file from a backup (or set AIHUB_MASTER_KEY to the key); no new key was written",
            path.display()
        )));
    }
    write_key_file(&path, &cipher)?;
    tracing::info!(file = %path.display(), "generated a new master key (keep a backup: without it stored provider keys are lost)");
    Ok((cipher, KeySource::File(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding_to_the_row() {
        let c = Cipher::generate();
        let blob = c.encrypt(7, "sk-secret-value").unwrap();
        assert_eq!(c.decrypt(7, &blob).unwrap(), "sk-secret-value");
        assert!(
            c.decrypt(8, &blob).is_err(),
            "copied to another row must not decrypt"
        );
        let other = Cipher::generate();
        assert!(other.decrypt(7, &blob).is_err());
        let blob2 = c.encrypt(7, "sk-secret-value").unwrap();
        assert_ne!(blob, blob2, "nonces are random");
    }

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(mask("sk-proj-abcdefghijklmnop1234"), "sk-...1234");
        assert_eq!(mask("short"), "****");
        assert!(!mask("AIzaSyD-abcdefghijklmnopqrstu").contains("abcdefgh"));
    }

    #[test]
    fn no_new_key_while_secrets_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_master_key(dir.path(), None, |_| Ok(Some(false))).unwrap_err();
        assert!(err.to_string().contains("master key"), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!key_file(dir.path()).exists(), "no key file may be left");
        assert!(!key_file(dir.path()).with_extension("tmp").exists());
        // A store that cannot be read is no reason to make a key either.
        let err = load_master_key(dir.path(), None, |_| {
            Err(StoreError::Crypto("disk I/O error".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("no new master key"), "{err}");
        assert!(!key_file(dir.path()).exists());
        // Restored: it loads, whatever the probe says.
        let c = Cipher::generate();
        write_key_file(&key_file(dir.path()), &c).unwrap();
        let (loaded, _) = load_master_key(dir.path(), None, |_| Ok(Some(true))).unwrap();
        assert_eq!(loaded.to_base64(), c.to_base64());
    }

    #[test]
    fn an_interrupted_rotation_is_finished_without_the_old_file() {
        // The new key committed, the old file gone: the pending key is installed.
        let dir = tempfile::tempdir().unwrap();
        let new = Cipher::generate();
        write_key_file(&pending_key_file(dir.path()), &new).unwrap();
        let want = new.to_base64();
        let (c, _) =
            load_master_key(dir.path(), None, |c| Ok(Some(c.to_base64() == want))).unwrap();
        assert_eq!(c.to_base64(), want);
        assert!(!pending_key_file(dir.path()).exists());
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, src) = load_master_key(dir.path(), None, |_| Ok(None)).unwrap();
        assert_eq!(src, KeySource::File(key_file(dir.path())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (c2, _) = load_master_key(dir.path(), None, |_| Ok(None)).unwrap();
        assert_eq!(c1.to_base64(), c2.to_base64());
        let (c3, src) = load_master_key(dir.path(), Some(&Cipher::generate().to_base64()), |_| {
            Ok(None)
        })
        .unwrap();
        assert_eq!(src, KeySource::Env);
        assert_ne!(c3.to_base64(), c1.to_base64());
        assert!(Cipher::from_base64("dG9vLXNob3J0").is_err());
    }
}
