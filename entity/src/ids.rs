//! Prefixed, time-ordered identifiers (SPEC §4): `acc_` + 26 Crockford base32 characters
//! of a UUIDv7, so ids sort by creation time as plain strings.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const ENCODED_LEN: usize = 26;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}` followed by 26 base32 characters)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

/// Encodes 128 bits as 26 lowercase Crockford base32 characters, most significant first.
pub fn encode_u128(mut n: u128) -> String {
    let mut out = [0u8; ENCODED_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

/// A new unprefixed id: a UUIDv7 as 26 base32 characters, ordered after every id generated
/// before it in this process. Every id in the system comes from here.
#[cfg(feature = "orm")]
pub fn generate_unprefixed() -> String {
    encode_u128(uuid::Uuid::now_v7().as_u128())
}

/// Characters of an encoded id that carry the UUIDv7's 48-bit millisecond timestamp: the
/// first holds 3 bits (the top 2 of the 130 are always 0), the next nine 45.
const TIME_CHARS: usize = 10;

/// The smallest unprefixed id a UUIDv7 made at `unix_ms` can have: every id generated at or
/// after that millisecond sorts at or after it, every one before sorts before. A day's
/// partition of `events` is bounded by two of these.
pub fn lowest_at(unix_ms: u64) -> String {
    encode_u128(((unix_ms & ((1 << 48) - 1)) as u128) << 80)
}

/// The millisecond an unprefixed id's UUIDv7 was made at, as [`lowest_at`] encodes it;
/// `None` when `encoded` is not an id. A client-supplied event id says whatever time it says.
pub fn millis_of(encoded: &str) -> Option<u64> {
    is_encoded(encoded).then_some(())?;
    Some(encoded.bytes().take(TIME_CHARS).fold(0u64, |ms, b| {
        let digit = ALPHABET.iter().position(|&a| a == b).expect("checked by is_encoded") as u64;
        (ms << 5) | digit
    }))
}

fn is_encoded(s: &str) -> bool {
    s.len() == ENCODED_LEN
        && s.bytes().all(|b| ALPHABET.contains(&b))
        // 26 * 5 = 130 bits: the first character carries only the top 3 bits.
        && s.as_bytes()[0] <= b'7'
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "orm", derive(sea_orm::DeriveValueType))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        // A primary key's type must say how to come from an auto-increment u64; ours never do.
        #[cfg(feature = "orm")]
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, sea_orm::DbErr> {
                Err(sea_orm::DbErr::ConvertFromU64(stringify!($name)))
            }
        }

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id ordered after every id generated before it in this process.
            #[cfg(feature = "orm")]
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, generate_unprefixed()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(rest) if is_encoded(rest) => Ok(Self(s.to_owned())),
                    _ => Err(IdError { kind: $kind, prefix: $prefix, value: s.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        // An id reads as the text it is wherever text is wanted (a URL, a log line, a lookup
        // in a map keyed by id); only the way in, text to id, is checked.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Lets `Entity::find_by_id(&id)` take a borrowed id.
        impl From<&$name> for $name {
            fn from(id: &$name) -> $name {
                id.clone()
            }
        }

        #[cfg(feature = "orm")]
        impl From<&$name> for sea_orm::Value {
            fn from(id: &$name) -> sea_orm::Value {
                id.0.as_str().into()
            }
        }

        // The engine's hand-written statements (sqlx) read and bind ids as the text they are;
        // what the database holds was checked on its way in.
        sqlx_text!($name, |text: &str| Ok::<_, std::convert::Infallible>(Self(text.to_owned())));

        #[cfg(feature = "orm")]
        impl sea_orm::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sea_orm::sqlx::postgres::PgTypeInfo {
                <String as sea_orm::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        #[cfg(feature = "orm")]
        impl sea_orm::sqlx::Encode<'_, sea_orm::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sea_orm::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sea_orm::sqlx::encode::IsNull, sea_orm::sqlx::error::BoxDynError> {
                <&str as sea_orm::sqlx::Encode<sea_orm::sqlx::Postgres>>::encode(self.0.as_str(), buf)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(AccountId, "acc_", "account");
prefixed_id!(UserId, "usr_", "user");
prefixed_id!(EndpointId, "ep_", "endpoint");
prefixed_id!(BulkRetryId, "bulk_", "bulk retry or recovery");
prefixed_id!(EventId, "evt_", "event");
prefixed_id!(DeliveryId, "dlv_", "delivery");
prefixed_id!(AttemptId, "att_", "attempt");
prefixed_id!(ApiKeyId, "key_", "API key");
prefixed_id!(InvitationId, "inv_", "invitation");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_preserves_numeric_order_as_string_order() {
        let values = [0u128, 1, 31, 32, 1 << 64, u128::MAX / 3, u128::MAX];
        let encoded: Vec<String> = values.iter().map(|&v| encode_u128(v)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        assert_eq!(encode_u128(u128::MAX), "7zzzzzzzzzzzzzzzzzzzzzzzzz");
    }

    #[cfg(feature = "orm")]
    #[test]
    fn generated_ids_parse_back_and_increase() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        let first = &ids[0];
        assert_eq!(first.as_str().parse::<EventId>().unwrap(), *first);
    }

    #[test]
    fn parsing_rejects_wrong_prefix_length_and_alphabet() {
        let good = format!("ep_{}", encode_u128(12345));
        assert!(good.parse::<EndpointId>().is_ok());
        assert!(good.parse::<EventId>().is_err(), "prefix of another kind");
        assert!("ep_123".parse::<EndpointId>().is_err(), "too short");
        let upper = good.to_uppercase().replace("EP_", "ep_");
        assert!(upper.parse::<EndpointId>().is_err(), "uppercase");
        let with_u = format!("ep_{}u", &encode_u128(1)[..25]);
        assert!(with_u.parse::<EndpointId>().is_err(), "u is not in the alphabet");
        let overflow = format!("ep_8{}", &encode_u128(0)[1..]);
        assert!(overflow.parse::<EndpointId>().is_err(), "more than 128 bits");
    }

    #[test]
    fn an_ids_millisecond_reads_back_and_bounds_the_ids_of_that_millisecond() {
        let ms = 1_796_256_000_000; // 2026-12-03T00:00:00Z
        let low = lowest_at(ms);
        assert_eq!(millis_of(&low), Some(ms));
        assert_eq!(&low[TIME_CHARS..], "0000000000000000");
        let inside = encode_u128(((ms as u128) << 80) | (u128::MAX >> 48));
        let next = lowest_at(ms + 1);
        assert!(low <= inside && inside < next, "{low} {inside} {next}");
        assert!(lowest_at(ms - 1) < low);
        assert_eq!(millis_of("nope"), None);
    }

    #[cfg(feature = "orm")]
    #[test]
    fn a_generated_id_carries_the_time_it_was_made() {
        let before = chrono::Utc::now().timestamp_millis() as u64;
        let id = EventId::generate();
        let after = chrono::Utc::now().timestamp_millis() as u64;
        let ms = millis_of(&id.as_str()[EventId::PREFIX.len()..]).unwrap();
        assert!(before <= ms && ms <= after, "{before} {ms} {after}");
    }

    #[test]
    fn serde_round_trip_validates() {
        let id = format!("\"acc_{}\"", encode_u128(7));
        let parsed: AccountId = serde_json::from_str(&id).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), id);
        assert!(serde_json::from_str::<AccountId>("\"acc_nope\"").is_err());
    }
}
