//! What the consent calls answer (`check_single_agree`, `check_room_agree`): whether an external
//! contact agreed to having conversations with the corp's members archived.
//!
//! The service spells the external contact's field `exteranalopenid`; the Rust field is
//! `external_openid` and serde keeps the service's spelling on the wire.

use serde::{Deserialize, Serialize};

/// An external contact's answer. A value this client does not know is kept verbatim in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AgreeStatus {
    Agree,
    Disagree,
    /// Consent assumed by default (the contact was not asked).
    DefaultAgree,
    Other(String),
}

impl AgreeStatus {
    /// The wire value (`"Agree"`, `"Disagree"`, `"Default_Agree"` or the unknown value).
    pub fn as_str(&self) -> &str {
        match self {
            AgreeStatus::Agree => "Agree",
            AgreeStatus::Disagree => "Disagree",
            AgreeStatus::DefaultAgree => "Default_Agree",
            AgreeStatus::Other(s) => s,
        }
    }
}

impl From<String> for AgreeStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "Agree" => AgreeStatus::Agree,
            "Disagree" => AgreeStatus::Disagree,
            "Default_Agree" => AgreeStatus::DefaultAgree,
            _ => AgreeStatus::Other(value),
        }
    }
}

impl From<AgreeStatus> for String {
    fn from(value: AgreeStatus) -> Self {
        match value {
            AgreeStatus::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

/// The consent of one (member, external contact) pair, from `check_single_agree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreeInfo {
    /// The corp member.
    pub userid: String,
    #[serde(rename = "exteranalopenid")]
    pub external_openid: String,
    pub agree_status: AgreeStatus,
    /// When the status last changed, in seconds since the Unix epoch.
    pub status_change_time: i64,
}

/// The consent of one external member of a room, from `check_room_agree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAgreeInfo {
    #[serde(rename = "exteranalopenid")]
    pub external_openid: String,
    pub agree_status: AgreeStatus,
    /// When the status last changed, in seconds since the Unix epoch.
    pub status_change_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_unknown_values_verbatim() {
        for (wire, status) in [
            ("Agree", AgreeStatus::Agree),
            ("Disagree", AgreeStatus::Disagree),
            ("Default_Agree", AgreeStatus::DefaultAgree),
            (
                "Pending_Review",
                AgreeStatus::Other("Pending_Review".into()),
            ),
            ("agree", AgreeStatus::Other("agree".into())),
        ] {
            let json = format!("\"{wire}\"");
            let got: AgreeStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(got, status);
            assert_eq!(serde_json::to_string(&got).unwrap(), json);
        }
    }

    #[test]
    fn the_misspelled_field_is_read_and_written() {
        let json = r#"{"status_change_time":1562766651,"userid":"zhangsan","exteranalopenid":"wmXXXX","agree_status":"Agree"}"#;
        let info: AgreeInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.external_openid, "wmXXXX");
        assert_eq!(info.status_change_time, 1_562_766_651);
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back["exteranalopenid"], "wmXXXX");
    }
}
