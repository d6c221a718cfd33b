//! Money as clients send it (a decimal in major units, "49.00") and as stored: integer minor
//! units of its ISO 4217 currency, never a float.

use std::str::FromStr;

use rust_decimal::Decimal;

/// The largest amount accepted, in major units: far above any customer's monthly revenue, and
/// safely inside an i64 of minor units for every currency.
const MAX_MAJOR: i64 = 1_000_000_000_000;

/// Why an amount was refused; the caller names the field.
#[derive(Debug, PartialEq, Eq)]
pub enum AmountError {
    NotANumber,
    Negative,
    TooPrecise { exponent: u32 },
    TooLarge,
}

impl std::fmt::Display for AmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmountError::NotANumber => write!(f, "must be a decimal number such as \"49.00\""),
            AmountError::Negative => write!(f, "must not be negative"),
            AmountError::TooPrecise { exponent: 0 } => {
                write!(f, "this currency has no minor unit: send whole units")
            }
            AmountError::TooPrecise { exponent } => {
                write!(f, "at most {exponent} decimal places in this currency")
            }
            AmountError::TooLarge => write!(f, "must be below {MAX_MAJOR}"),
        }
    }
}

/// A currency's number of decimal places, if it is an ISO 4217 currency that has them fixed.
pub fn exponent(currency: &str) -> Option<u32> {
    iso_currency::Currency::from_code(currency)?
        .exponent()
        .map(u32::from)
}

/// Parses the text of a decimal (as sent over REST, or a GraphQL `Decimal`).
pub fn parse(text: &str) -> Result<Decimal, AmountError> {
    let text = text.trim();
    // `Decimal` also reads exponents ("1e3") and underscores; money is plain digits.
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
    {
        return Err(AmountError::NotANumber);
    }
    Decimal::from_str(text).map_err(|_| AmountError::NotANumber)
}

/// `amount` in minor units of a currency with `exponent` decimal places.
pub fn to_minor(amount: Decimal, exponent: u32) -> Result<i64, AmountError> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(AmountError::Negative);
    }
    if amount >= Decimal::from(MAX_MAJOR) {
        return Err(AmountError::TooLarge);
    }
    let normalized = amount.normalize();
    if normalized.scale() > exponent {
        return Err(AmountError::TooPrecise { exponent });
    }
    let minor = normalized * Decimal::from(10i64.pow(exponent));
    i64::try_from(minor).map_err(|_| AmountError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(text: &str, currency: &str) -> Result<i64, AmountError> {
        to_minor(parse(text)?, exponent(currency).expect("a currency"))
    }

    #[test]
    fn amounts_become_exact_minor_units_of_their_currency() {
        assert_eq!(minor("49.00", "USD"), Ok(4900));
        assert_eq!(minor("49.9", "EUR"), Ok(4990));
        assert_eq!(
            minor("49.000", "USD"),
            Ok(4900),
            "trailing zeros are not precision"
        );
        assert_eq!(minor("1500", "JPY"), Ok(1500));
        assert_eq!(minor("1.234", "BHD"), Ok(1234));
        assert_eq!(minor("0", "USD"), Ok(0));
        assert_eq!(minor("0.1", "USD"), Ok(10), "no float rounding anywhere");
    }

    #[test]
    fn bad_amounts_are_refused_with_the_reason() {
        assert_eq!(minor("-1.00", "USD"), Err(AmountError::Negative));
        assert_eq!(
            minor("49.001", "USD"),
            Err(AmountError::TooPrecise { exponent: 2 })
        );
        assert_eq!(
            minor("10.5", "JPY"),
            Err(AmountError::TooPrecise { exponent: 0 })
        );
        assert_eq!(minor("1e3", "USD"), Err(AmountError::NotANumber));
        assert_eq!(minor("forty", "USD"), Err(AmountError::NotANumber));
        assert_eq!(minor("", "USD"), Err(AmountError::NotANumber));
        assert_eq!(minor("1000000000000", "USD"), Err(AmountError::TooLarge));
        assert_eq!(exponent("XYZ"), None);
        assert_eq!(exponent("XAU"), None, "gold has no minor unit to count in");
    }
}
