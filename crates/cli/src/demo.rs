//! The synthetic demo clinic (being written).
pub const DEFAULT_SEED: u64 = 20261127;
pub async fn ensure(_store: &keta_store::Store, _seed: u64) -> anyhow::Result<String> {
    Ok("empty".into())
}
