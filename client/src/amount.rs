//! Amounts as people type them (`1000uvtr`, or `1000`), with errors that say
//! what is wrong: a decimal point, another unit, a number too large.
use framework::{Amount, DENOM};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?}: expected a whole number of {d}, e.g. 1000{d}", d = DENOM)]
    NotANumber(String),
    #[error("{0:?}: unknown denomination {1:?}; amounts are in {d}, e.g. 1000{d}", d = DENOM)]
    Denom(String, String),
    #[error(
        "{0:?}: {d} is the smallest unit, so amounts are whole numbers without a decimal \
         point or separators, e.g. 1500{d}",
        d = DENOM
    )]
    NotWhole(String),
    #[error("{0:?} is too large: the largest amount is {max}{d}", max = u128::MAX, d = DENOM)]
    TooLarge(String),
}

/// Parses `1000uvtr` or `1000`.
pub fn parse_amount(s: &str) -> Result<Amount, AmountError> {
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '_')))
        .unwrap_or(t.len());
    let (num, denom) = t.split_at(end);
    if num.is_empty() {
        return Err(AmountError::NotANumber(s.to_string()));
    }
    if !denom.is_empty() && denom != DENOM {
        return Err(AmountError::Denom(s.to_string(), denom.to_string()));
    }
    if num.contains(['.', ',', '_']) {
        return Err(AmountError::NotWhole(s.to_string()));
    }
    // Only digits are left, so the one way to fail is overflow.
    num.parse::<u128>()
        .map(Amount)
        .map_err(|_| AmountError::TooLarge(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wrong_amount_gets_the_reason_it_is_wrong() {
        assert!(matches!(
            parse_amount("1.5uvtr"),
            Err(AmountError::NotWhole(_))
        ));
        assert!(matches!(
            parse_amount("2,000"),
            Err(AmountError::NotWhole(_))
        ));
        assert!(matches!(
            parse_amount("340282366920938463463374607431768211456uvtr"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(parse_amount("5atom"), Err(AmountError::Denom(_, d)) if d == "atom"));
        assert!(matches!(
            parse_amount("uvtr"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("-1uvtr"),
            Err(AmountError::NotANumber(_))
        ));
        assert_eq!(parse_amount(" 1500uvtr "), Ok(Amount(1500)));
        assert_eq!(parse_amount("7"), Ok(Amount(7)));
    }
}
