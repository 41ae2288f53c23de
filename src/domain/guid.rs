//! What the GUID ids share: only the hyphenated form, shown lower-case.

/// A GUID newtype: `parse` accepts only the hyphenated form (the simple, braced and urn forms
/// `Uuid` also accepts are not what the service writes and would not match a blob name), and
/// `Display` writes it lower-case and hyphenated, as Custom Vision does in blob names. The
/// `Uuid` inside stays private.
macro_rules! guid_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, $crate::domain::DomainError> {
                let hyphenated = value.len() == 36 && value.as_bytes()[8] == b'-';
                match uuid::Uuid::try_parse(value) {
                    Ok(id) if hyphenated => Ok(Self(id)),
                    _ => Err($crate::domain::DomainError::BadGuid {
                        field: $field,
                        value: $crate::domain::truncate(value, 64),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

pub(super) use guid_newtype;
