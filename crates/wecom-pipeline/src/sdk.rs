//! The official Finance SDK as a source and as a cipher, always in supervised worker processes.
//!
//! `source.kind = "sdk"` starts a worker pool and an in-process gateway on loopback with a random bearer
//! token, and the pipeline's ordinary HTTP client talks to that gateway: fetching, retries, token handling and
//! media streaming (with `Range` resume mapped onto the SDK's index buffer) are then the very same code paths
//! as for a remote gateway or the simulator. `cipher.kind = "sdk"` unwraps the random key in Rust with the
//! keyring and hands `DecryptData` to the pool from the decrypt stage's blocking threads.

use std::sync::Arc;

use wecom_api::Secret;
use wecom_crypto::{MessageCipher, SimCipher};
use wecom_sdk::{GatewayConfig, GatewayHandle, SdkCipher, SdkPool};

use crate::config::{CipherKind, SourceConfig, Validated};
use crate::error::PipelineError;

/// Starts the worker pool when the source or the cipher needs it.
pub async fn start_pool(cfg: &Validated) -> Result<Option<SdkPool>, PipelineError> {
    let needed = matches!(cfg.source, SourceConfig::Sdk {}) || cfg.cipher == CipherKind::Sdk;
    let (true, Some(sdk)) = (needed, &cfg.sdk) else {
        return Ok(None);
    };
    let sdk_err = |e: &(dyn std::error::Error + 'static)| PipelineError::Sdk {
        corp_id: cfg.corp_id.clone(),
        reason: wecom_model::error_chain(e),
    };
    let pc = sdk
        .pool_config(&cfg.corp_id, &cfg.corp_secret)
        .map_err(|e| sdk_err(&e))?;
    let pool = SdkPool::start(pc).await.map_err(|e| sdk_err(&e))?;
    Ok(Some(pool))
}

/// An in-process gateway over `pool` on a free loopback port; returns it and the bearer token that the
/// pipeline's HTTP client uses as its secret.
pub async fn local_gateway(
    pool: &SdkPool,
    corp_id: &str,
) -> Result<(GatewayHandle, Secret), PipelineError> {
    let token = Secret::new(random_token());
    let mut gc = GatewayConfig::new(corp_id.to_string(), token.clone());
    gc.listen = ([127, 0, 0, 1], 0).into();
    let handle = wecom_sdk::start_gateway(pool.clone(), gc)
        .await
        .map_err(|e| PipelineError::Sdk {
            corp_id: corp_id.to_string(),
            reason: format!("in-process gateway: {e}"),
        })?;
    Ok((handle, token))
}

/// The message cipher of `cfg`; `pool` must be given for `cipher.kind = "sdk"`.
pub fn cipher(
    cfg: &Validated,
    pool: Option<&SdkPool>,
) -> Result<Arc<dyn MessageCipher>, PipelineError> {
    match (cfg.cipher, pool) {
        (CipherKind::Sim, _) => Ok(Arc::new(SimCipher)),
        (CipherKind::Sdk, Some(pool)) => Ok(Arc::new(SdkCipher::new(pool.clone()))),
        (CipherKind::Sdk, None) => Err(PipelineError::Sdk {
            corp_id: cfg.corp_id.clone(),
            reason:
                "cipher.kind = \"sdk\" but no sdk worker pool is running (is [sdk] configured?)"
                    .into(),
        }),
    }
}

fn random_token() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 24];
    // The token only guards a loopback listener for this process's lifetime; the OS RNG is plenty.
    getrandom_fill(&mut bytes);
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn getrandom_fill(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(buf);
}
