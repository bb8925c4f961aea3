//! The `message_table!` macro: one row per message (`id => Name fields`)
//! generates the enum, `id()`, `name()`, `encode()`, `decode()` and the
//! `(name, id, structure)` table, so an id is written exactly once.
//!
//! Each direction names its marker type: `WireField<Direction>` says how a
//! field type goes on the wire that way (`put`, `read`, and its `STRUCTURE`:
//! the type names of the Protocol table).
//!
//! A row is `id => Name`, `id => Name(binding: Type)` or
//! `id => Name { field: Type, … }`, fields in wire order. `(binding: String,
//! or_empty)` also accepts an empty payload as an empty string.

/// Generates a direction's message enum and codec from its table (see the
/// module docs).
macro_rules! message_table {
    (
        $(#[$enum_meta:meta])*
        pub enum $enum:ident;
        direction: $dir:ident;
        $(#[$table_meta:meta])*
        $table_vis:vis const $table:ident;
        {
            $(
                $(#[$meta:meta])*
                $id:literal => $name:ident
                    $( ( $binding:ident : $tty:ty $(, $or_empty:ident)? ) )?
                    $( { $( $fname:ident : $fty:ty ),* $(,)? } )?
            ),* $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        pub enum $enum {
            $( $(#[$meta])* $name $( ($tty) )? $( { $( $fname: $fty ),* } )?, )*
        }

        $(#[$table_meta])*
        $table_vis const $table: &[(&str, u8, &[&str])] = &[
            $(
                (
                    stringify!($name),
                    $id,
                    // The row's structure: its fields' type names end to end.
                    &$crate::datachannel::table::concat::<{
                        $crate::datachannel::table::total_len(&[
                            $( <$tty as $crate::datachannel::wire::WireField<$dir>>::STRUCTURE )?
                            $( $( <$fty as $crate::datachannel::wire::WireField<$dir>>::STRUCTURE ),* )?
                        ])
                    }>(&[
                        $( <$tty as $crate::datachannel::wire::WireField<$dir>>::STRUCTURE )?
                        $( $( <$fty as $crate::datachannel::wire::WireField<$dir>>::STRUCTURE ),* )?
                    ]),
                ),
            )*
        ];

        impl $enum {
            /// The message id (byte 0).
            pub fn id(&self) -> u8 {
                match self {
                    $( Self::$name { .. } => $id, )*
                }
            }

            /// The message name, as in the Protocol table.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$name { .. } => stringify!($name), )*
                }
            }

            /// The wire bytes.
            pub fn encode(&self) -> Vec<u8> {
                let mut out = vec![self.id()];
                match self {
                    $(
                        Self::$name $( ($binding) )? $( { $( $fname ),* } )? => {
                            $( <$tty as $crate::datachannel::wire::WireField<$dir>>::put($binding, &mut out); )?
                            $( $( <$fty as $crate::datachannel::wire::WireField<$dir>>::put($fname, &mut out); )* )?
                        }
                    )*
                }
                out
            }

            /// Parse one message. Never panics.
            pub fn decode(bytes: &[u8]) -> Result<Self, $crate::datachannel::DataChannelError> {
                use $crate::datachannel::wire::{split_id, Reader};
                let (id, payload) = split_id(bytes)?;
                match id {
                    $(
                        $id => {
                            let r = &mut Reader::new(stringify!($name), payload);
                            // Struct fields are evaluated in the order written: wire order.
                            let message = Self::$name
                                $( ($crate::datachannel::table::read_field!(r, $dir, $tty $(, $or_empty)?)) )?
                                $( { $( $fname: <$fty as $crate::datachannel::wire::WireField<$dir>>::read(r)? ),* } )?;
                            r.finish(message)
                        }
                    )*
                    other => Err($crate::datachannel::DataChannelError::UnknownId(other)),
                }
            }
        }
    };
}
pub(super) use message_table;

/// One tuple field read from `$r`; with `or_empty`, an empty payload gives
/// the type's default instead.
macro_rules! read_field {
    ($r:ident, $dir:ident, $ty:ty) => {
        <$ty as $crate::datachannel::wire::WireField<$dir>>::read($r)?
    };
    ($r:ident, $dir:ident, $ty:ty, or_empty) => {
        if $r.is_empty() {
            <$ty as Default>::default()
        } else {
            <$ty as $crate::datachannel::wire::WireField<$dir>>::read($r)?
        }
    };
}
pub(super) use read_field;

/// How many type names `parts` hold together.
pub(super) const fn total_len(parts: &[&[&'static str]]) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < parts.len() {
        total += parts[i].len();
        i += 1;
    }
    total
}

/// `parts` end to end: a message's structure from its fields' structures.
/// `N` must be [`total_len`] of `parts` (checked at compile time: a wrong `N`
/// fails const evaluation).
pub(super) const fn concat<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut k = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(k == N, "structure length mismatch");
    out
}
