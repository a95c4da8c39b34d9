//! The admin token: from config/`AIHUB_ADMIN_TOKEN`, else generated on first start and
//! printed once. Only its SHA-256 is kept, in the store.

use crate::store::traits::MetaStore;
use crate::store::StoreError;
use sha2::{Digest, Sha256};

const SETTING: &str = "admin_token_sha256";

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Crypto(format!("no randomness: {e}")))?;
    Ok(format!("adm-{}", hex::encode(bytes)))
}

/// The hash to check admin requests against, and a newly generated token to show once.
pub async fn resolve(
    store: &dyn MetaStore,
    configured: Option<&str>,
) -> Result<([u8; 32], Option<String>), StoreError> {
    if let Some(t) = configured.filter(|t| !t.is_empty()) {
        let h = hash(t);
        store.set_setting(SETTING.into(), hex::encode(h)).await?;
        return Ok((h, None));
    }
    if let Some(stored) = store.setting(SETTING.into()).await? {
        let mut h = [0u8; 32];
        if hex::decode_to_slice(stored.trim(), &mut h).is_ok() {
            return Ok((h, None));
        }
        tracing::warn!("stored admin token hash is unreadable; generating a new token");
    }
    let token = random_token()?;
    let h = hash(&token);
    store.set_setting(SETTING.into(), hex::encode(h)).await?;
    Ok((h, Some(token)))
}

/// Replaces the token with a new random one (`aihub admin-token reset`).
pub async fn reset(store: &dyn MetaStore) -> Result<String, StoreError> {
    let token = random_token()?;
    store
        .set_setting(SETTING.into(), hex::encode(hash(&token)))
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[tokio::test]
    async fn generated_once_then_remembered() {
        let (_d, s) = test_store();
        let m = crate::store::sqlite::SqliteStores::new(
            s.clone(),
            crate::store::secrets::Cipher::generate(),
        );
        let (h1, shown) = resolve(&m, None).await.unwrap();
        let token = shown.unwrap();
        assert_eq!(hash(&token), h1);
        let (h2, shown) = resolve(&m, None).await.unwrap();
        assert_eq!((h1, None), (h2, shown));
        let (h3, _) = resolve(&m, Some("mine")).await.unwrap();
        assert_eq!(h3, hash("mine"));
        assert!(!s.setting(SETTING).unwrap().unwrap().contains("mine"));
    }
}
