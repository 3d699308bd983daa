//! Lenient field readers for decrypted payloads.
//!
//! The archive's JSON is produced by several SDK builds and is not always typed the same way: numbers arrive
//! as strings, strings as numbers, and keys as `null`. One odd field must not turn a whole message into an
//! error, so typed payload fields read through these helpers. Anything they still reject makes the payload
//! fall back to `Content::Unknown`, which keeps it verbatim.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
use serde_json::Value;

/// A string; `null` reads as empty, numbers and booleans as their JSON text.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
        Value::Array(_) => Err(de::Error::invalid_type(Unexpected::Seq, &"a string")),
        Value::Object(_) => Err(de::Error::invalid_type(Unexpected::Map, &"a string")),
    }
}

/// A string holding JSON: a string stays as it is; any other value is kept as its JSON text, so an item
/// whose `content` arrives as an object rather than as a string is not lost.
pub(crate) fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// A list of strings; `null` reads as empty, scalar elements as their text, a lone string as one element.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                _ => Err(de::Error::custom("expected a list of strings")),
            })
            .collect(),
        _ => Err(de::Error::custom("expected a list of strings")),
    }
}

/// A list of typed items; `null` reads as empty.
pub(crate) fn vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A boolean; also accepts `0`/`1`, `"true"`/`"false"` and `null` (false).
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim() {
            "" | "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(de::Error::custom("expected a boolean")),
        },
        _ => Err(de::Error::custom("expected a boolean")),
    }
}

macro_rules! number_reader {
    ($name:ident, $ty:ty, $what:literal, $from_u64:expr, $from_i64:expr, $from_f64:expr) => {
        #[doc = concat!("An optional ", $what, "; accepts a JSON number, a numeric string, an empty string or `null`.")]
        pub(crate) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Option<$ty>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(concat!($what, ", a numeric string or null"))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                    let from_u64: fn(u64) -> Option<$ty> = $from_u64;
                    from_u64(v)
                        .map(Some)
                        .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                    let from_i64: fn(i64) -> Option<$ty> = $from_i64;
                    from_i64(v)
                        .map(Some)
                        .ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                    let from_f64: fn(f64) -> Option<$ty> = $from_f64;
                    from_f64(v)
                        .map(Some)
                        .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    let t = v.trim();
                    if t.is_empty() {
                        return Ok(None);
                    }
                    if let Ok(n) = t.parse::<$ty>() {
                        return Ok(Some(n));
                    }
                    t.parse::<f64>()
                        .ok()
                        .and_then($from_f64)
                        .map(Some)
                        .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                    d.deserialize_any(V)
                }
            }
            d.deserialize_any(V)
        }
    };
}

// 2^64 and 2^63 as f64; integral floats below them convert exactly enough for JSON that wrote `1.0e3`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

number_reader!(
    u64,
    u64,
    "an unsigned integer",
    Some,
    |i| u64::try_from(i).ok(),
    |f| { (f.fract() == 0.0 && (0.0..TWO_POW_64).contains(&f)).then_some(f as u64) }
);
number_reader!(
    i64,
    i64,
    "an integer",
    |u| i64::try_from(u).ok(),
    Some,
    |f| { (f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f)).then_some(f as i64) }
);
number_reader!(
    f64,
    f64,
    "a number",
    |u| Some(u as f64),
    |i| Some(i as f64),
    |f| f.is_finite().then_some(f)
);

/// The text of a scalar JSON value (strings as they are, numbers and booleans as JSON text).
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// An unsigned integer from a JSON value, as leniently as the `u64` field reader.
pub(crate) fn value_u64(v: &Value) -> Option<u64> {
    u64(v).ok().flatten()
}
