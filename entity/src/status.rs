//! Small enums stored as text columns; `as_str`/`FromStr` are the column encoding, and with
//! feature `orm` each is a sea-orm `ActiveEnum` on that same text, so the entities' columns
//! are typed and a query filters with `Column::Status.eq(EndpointStatus::Failing)`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Text that is none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "orm", derive(sea_orm::DeriveActiveEnum, sea_orm::EnumIter))]
        #[cfg_attr(feature = "orm", sea_orm(rs_type = "String", db_type = "Text"))]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $(#[cfg_attr(feature = "orm", sea_orm(string_value = $text))] $variant,)* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        // The engine's hand-written statements (sqlx) read the column typed too; its CHECK
        // constraint keeps out any other text.
        sqlx_text!($name, |text: &str| text.parse::<Self>());

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Role { Owner => "owner", Admin => "admin", Member => "member" });
text_enum!(EndpointStatus { Healthy => "healthy", Failing => "failing", Disabled => "disabled" });
text_enum!(DeliveryStatus { Pending => "pending", Delivered => "delivered", Failed => "failed" });
text_enum!(BulkRetryKind { Retry => "retry", Recover => "recover" });
text_enum!(BulkRetryState { Running => "running", Finished => "finished" });

impl Role {
    /// SPEC §9: members read, owners and admins change.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}
