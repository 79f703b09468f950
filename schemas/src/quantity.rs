//! Resource quantities (`250m`, `64Mi`, `1.5`, `2e3`) as Kubernetes writes
//! them: k8s-openapi's `Quantity` keeps the text; [`Amount`] is its exact
//! value, and [`QuantityExt`] reads one from the other.

use std::cmp::Ordering;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The regular expression the JSON Schema uses for a quantity string.
pub const QUANTITY_PATTERN: &str = r"^[+-]?(\d+\.?\d*|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?$";

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The exact value of a quantity in nano-units, so `0.5` and `500m` compare equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount {
    nanos: i128,
}

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form number + optional suffix.
    #[error(
        "invalid quantity {0:?}: expected a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, e3, ...), e.g. 250m or 64Mi"
    )]
    Syntax(String),
    /// Outside the range korral can represent exactly.
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

impl Amount {
    /// An amount of `nanos` billionths of a unit.
    pub fn from_nanos(nanos: i128) -> Self {
        Amount { nanos }
    }

    /// The exact value in billionths of a unit (fractions below a nano-unit round up).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths of a unit, rounded up (cpu `250m` → 250).
    pub fn millis(&self) -> i64 {
        clamp_i64(div_ceil(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (memory `64Mi` → 67108864).
    pub fn value(&self) -> i64 {
        clamp_i64(div_ceil(self.nanos, NANOS_PER_UNIT))
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

/// Reading a k8s-openapi `Quantity`'s value. Quantities in stored objects
/// passed validation; one that does not parse reads as zero.
pub trait QuantityExt {
    /// The exact value, or why the text is not a quantity.
    fn amount(&self) -> Result<Amount, QuantityError>;
    /// The value in billionths of a unit.
    fn nanos(&self) -> i128;
    /// The value in thousandths of a unit, rounded up.
    fn millis(&self) -> i64;
    /// The value in whole units, rounded up.
    fn value(&self) -> i64;
}

impl QuantityExt for Quantity {
    fn amount(&self) -> Result<Amount, QuantityError> {
        self.0.parse()
    }

    fn nanos(&self) -> i128 {
        self.amount().map(|a| a.nanos).unwrap_or(0)
    }

    fn millis(&self) -> i64 {
        self.amount().map(|a| a.millis()).unwrap_or(0)
    }

    fn value(&self) -> i64 {
        self.amount().map(|a| a.value()).unwrap_or(0)
    }
}

/// A quantity of `n` whole units.
pub fn from_units(n: i64) -> Quantity {
    Quantity(n.to_string())
}

/// A quantity of `n` thousandths (written `250m`, or whole units when exact).
pub fn from_millis(n: i64) -> Quantity {
    if n % 1000 == 0 {
        Quantity((n / 1000).to_string())
    } else {
        Quantity(format!("{n}m"))
    }
}

/// Whether two quantities have the same value (`0.5` and `500m` do); texts
/// that do not parse compare as text.
pub fn same(a: &Quantity, b: &Quantity) -> bool {
    match (a.amount(), b.amount()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.0 == b.0,
    }
}

/// Orders two quantities by value.
pub fn compare(a: &Quantity, b: &Quantity) -> Ordering {
    a.nanos().cmp(&b.nanos())
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 { q + 1 } else { q }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl FromStr for Amount {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || QuantityError::Syntax(s.to_string());
        let too_large = || QuantityError::TooLarge(s.to_string());
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        // mantissa digits, with the count of digits after the point
        let mut mantissa: i128 = 0;
        let mut scale: u32 = 0;
        let mut digits = 0usize;
        let mut seen_point = false;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => {
                    digits += 1;
                    // digits beyond 30 significant positions cannot matter at nano precision
                    if mantissa < 10i128.pow(30) {
                        mantissa = mantissa * 10 + i128::from(bytes[i] - b'0');
                        if seen_point {
                            scale += 1;
                        }
                    } else if !seen_point {
                        return Err(too_large());
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            i += 1;
        }
        if digits == 0 {
            return Err(syntax());
        }
        let suffix = &s[i..];
        // value = mantissa / 10^scale * 10^exp10 * 2^exp2, in nanos: * 10^9
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let rest = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or_else(syntax)?;
                let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let e: i32 = rest.parse().map_err(|_| too_large())?;
                if !(-40..=40).contains(&e) {
                    return Err(too_large());
                }
                (e, 0)
            }
        };
        let mut num = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        let mut den: i128 = 1;
        let total_exp = exp10 + 9 - scale as i32;
        if total_exp >= 0 {
            num = num
                .checked_mul(10i128.checked_pow(total_exp as u32).ok_or_else(too_large)?)
                .ok_or_else(too_large)?;
        } else {
            den = 10i128
                .checked_pow((-total_exp) as u32)
                .ok_or_else(too_large)?;
        }
        let mut nanos = div_ceil(num, den);
        if nanos > i128::from(i64::MAX) * NANOS_PER_UNIT {
            return Err(too_large());
        }
        if negative {
            nanos = -nanos;
        }
        Ok(Amount { nanos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Amount {
        s.parse().expect(s)
    }

    #[test]
    fn parses_the_suffixes_kubernetes_accepts() {
        assert_eq!(q("250m").millis(), 250);
        assert_eq!(q("0.5").millis(), 500);
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("1").millis(), 1000);
        assert_eq!(q("64Mi").value(), 64 * 1024 * 1024);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("2E-3").millis(), 2);
        assert_eq!(q("100n").nanos(), 100);
        assert_eq!(q("1u").nanos(), 1000);
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("+1k").value(), 1000);
        assert_eq!(q("1Ei").value(), 1 << 60);
    }

    #[test]
    fn equal_values_compare_equal() {
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1024Ki"), q("1Mi"));
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(same(&Quantity("0.5".into()), &Quantity("500m".into())));
    }

    #[test]
    fn fractions_below_a_nano_unit_round_up() {
        assert_eq!(q("0.0000000001").nanos(), 1);
        assert_eq!(q("1.0001m").millis(), 2);
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "m", "1.2.3", "1Q", "1 Mi", "1mi", "e3", "1e", "1e+", "--1", "1KiB", "0x10",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad:?} should not parse");
        }
        assert!(matches!(
            "99999999999999999999999999999999999E".parse::<Amount>(),
            Err(QuantityError::TooLarge(_))
        ));
    }

    #[test]
    fn constructors_write_canonical_text() {
        assert_eq!(from_millis(1500).0, "1500m");
        assert_eq!(from_millis(2000).0, "2");
        assert_eq!(from_units(7).value(), 7);
    }
}
