//! HTTP client of the project's archive contract (see `docs/CONTRACTS.md` and the reference's §1), and
//! the verification of the callbacks that announce new archive items ([`callback`]).
//!
//! It owns everything about talking to a contract server (the simulator or the SDK gateway): the
//! access-token cache, retries with bounded, jittered exponential backoff, and mapping every failure to
//! an [`ApiError`] with an [`ErrorClass`] the pipeline acts on.
//!
//! **No secret reaches a log line, an error or a `Debug` output**: the corp secret and the access
//! token are [`Secret`]s, URLs (whose query carries them) are never logged, and reqwest errors are
//! stripped of their URL. The client does **not** decrypt, de-duplicate or move cursors.

pub mod callback;
mod calls;
mod client;
mod config;
mod consent;
mod decode;
mod error;
mod media;
mod stats;
mod token;
mod wire;

pub use callback::{CallbackError, CallbackEvent, CallbackVerifier};
pub use calls::{MAX_AGREE_PAIRS, MAX_LIMIT};
pub use client::ArchiveClient;
pub use config::{
    ClientConfig, ConfigError, FetchConfig, RetryPolicy, DEFAULT_PAGE_BODY_LIMIT,
    DEFAULT_SMALL_BODY_LIMIT,
};
pub use consent::{AgreeInfo, AgreeStatus, RoomAgreeInfo};
pub use error::{ApiError, ErrorClass};
pub use media::MediaBody;
pub use stats::{ClientStats, EventCounts, EventKind};
/// Re-exported: the type lives in `wecom-model` so that crates without HTTP (storage config) can hold secrets.
pub use wecom_model::Secret;
pub use wire::{ChatDataItem, RoomInfo};

/// The endpoint names used in errors, logs and [`ClientStats`].
pub mod endpoint {
    pub const GETTOKEN: &str = "gettoken";
    pub const GET_CHAT_DATA: &str = "msgaudit/get_chat_data";
    pub const GROUPCHAT_GET: &str = "msgaudit/groupchat/get";
    pub const PERMIT_USERS: &str = "msgaudit/get_permit_user_list";
    pub const MEDIA: &str = "media/get";
    pub const CHECK_SINGLE_AGREE: &str = "msgaudit/check_single_agree";
    pub const CHECK_ROOM_AGREE: &str = "msgaudit/check_room_agree";
}
