/// An event as ABCI carries it: a type and ordered string attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub attributes: Vec<(String, String)>,
}

/// A typed event: one struct per proto message in `<module>/v1/events.proto`.
/// Its ABCI type is the proto's full name and its attributes are its fields.
pub trait TypedEvent {
    /// Full proto name, e.g. `veritrain.bank.v1.EventTransfer`.
    const KIND: &'static str;
    fn attributes(&self) -> Vec<(&'static str, String)>;

    fn to_event(&self) -> Event {
        Event {
            kind: Self::KIND.to_string(),
            attributes: self
                .attributes()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

/// Declares a typed event struct whose ABCI attributes are its fields, in
/// order, rendered with `Display`:
/// `typed_event!(EventX, "veritrain.m.v1.EventX", { a: Address, b: Amount });`
#[macro_export]
macro_rules! typed_event {
    ($name:ident, $kind:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        #[doc = concat!("`", $kind, "`.")]
        pub struct $name { $(pub $field: $ty),* }
        impl $crate::TypedEvent for $name {
            const KIND: &'static str = $kind;
            fn attributes(&self) -> Vec<(&'static str, String)> {
                vec![$((stringify!($field), self.$field.to_string())),*]
            }
        }
    };
}
