//! Closed sets: enums stored in maps as one byte, each variant with the
//! one name it has everywhere people read it (Prometheus labels, JSON,
//! log lines, CLI tables). The name is written once, in the enum's
//! definition, and everything else derives from it: the list of all
//! variants (so a new variant cannot be forgotten by a loop over them),
//! the byte conversion both ways, and the lookup by name.

/// What every closed set offers, for code generic over them (parsing a
/// config value, say).
pub trait ClosedSet: Copy + Sized + 'static {
    /// Every variant's name, in the order of definition.
    const NAMES: &'static [&'static str];
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

/// Defines a `#[repr(u8)]` enum whose variants carry a value and a name:
///
/// ```
/// sip_xdp_common::closed_set! {
///     /// What the example is.
///     pub enum Colour {
///         /// Doc of a variant.
///         Red = 1 => "red",
///         Green = 2 => "green",
///     }
/// }
/// assert_eq!(Colour::ALL, [Colour::Red, Colour::Green]);
/// assert_eq!(Colour::from_u8(2), Some(Colour::Green));
/// assert_eq!(Colour::from_name("red"), Some(Colour::Red));
/// assert_eq!(Colour::Green.name(), "green");
/// ```
#[macro_export]
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every variant, in the order of definition.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant's name, as labels, JSON and logs show it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The variant stored as `value` in a map, if any.
            pub const fn from_u8(value: u8) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The variant with this name, if any.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($label => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl $crate::ClosedSet for $name {
            const NAMES: &'static [&'static str] = &[$($label),+];
            fn name(self) -> &'static str {
                $name::name(self)
            }
            fn from_name(name: &str) -> Option<$name> {
                $name::from_name(name)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::closed_set! {
        enum Sample {
            A = 3 => "a",
            B = 7 => "bee",
        }
    }

    #[test]
    fn names_values_and_the_list_agree() {
        assert_eq!(Sample::ALL, &[Sample::A, Sample::B]);
        for s in Sample::ALL {
            assert_eq!(Sample::from_u8(*s as u8), Some(*s));
            assert_eq!(Sample::from_name(s.name()), Some(*s));
        }
        assert_eq!(Sample::from_u8(0), None);
        assert_eq!(Sample::from_name("c"), None);
        assert_eq!(Sample::B.name(), "bee");
    }
}
