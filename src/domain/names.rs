//! Closed sets of names (states, channels, kinds) shared by the API, the database and filters.

/// Defines an enum whose variants have a stable UPPER_SNAKE name: the name stored in the
/// database, written in filters and audit entries, and matched against the proto enum's value name
/// without its prefix.
///
/// `prefix = "LEAD_STATE_",` before the enum names the prefix of its values in the API's enum, so
/// that filters accept `LEAD_STATE_NURTURING` as well as `NURTURING` and the API maps names one way.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        crate::domain::names::named_enum! {
            prefix = "",
            $(#[$meta])*
            pub enum $name { $( $(#[$vmeta])* $variant => $text ),+ }
        }
    };
    (
        prefix = $prefix:literal,
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name { $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Every stable name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The prefix of the values' names in the API's enum (empty when the API has none).
            pub const PREFIX: &'static str = $prefix;

            /// The stable name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value with this stable name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named_enum;
