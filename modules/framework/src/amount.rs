use std::fmt;

/// The only denomination of the chain: micro-VTR.
pub const DENOM: &str = "uvtr";

/// An amount of uvtr. All arithmetic is checked: overflow and underflow are errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount overflow: {0} + {1} does not fit in 128 bits")]
    Overflow(Amount, Amount),
    #[error("amount underflow: {0} - {1} is negative")]
    Underflow(Amount, Amount),
    #[error("invalid amount {0:?}: expected a base-10 unsigned integer, optionally followed by \"uvtr\"")]
    Parse(String),
    #[error("invalid denomination {0:?}: only \"uvtr\" exists")]
    Denom(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, o: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_add(o.0)
            .map(Amount)
            .ok_or(AmountError::Overflow(self, o))
    }

    pub fn checked_sub(self, o: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_sub(o.0)
            .map(Amount)
            .ok_or(AmountError::Underflow(self, o))
    }

    /// `self * n`, checked (overflow reported as `self + self*(n-1)`).
    pub fn checked_mul_u64(self, n: u64) -> Result<Amount, AmountError> {
        self.0
            .checked_mul(u128::from(n))
            .map(Amount)
            .ok_or(AmountError::Overflow(self, Amount(u128::MAX)))
    }

    /// `self * num / den`, rounded down, with a 256-bit intermediate so it never
    /// overflows for `num <= den`. `den == 0` gives zero.
    pub fn mul_ratio(self, num: u64, den: u64) -> Amount {
        if den == 0 {
            return Amount::ZERO;
        }
        let (hi, lo) = (self.0 >> 64, self.0 & u128::from(u64::MAX));
        let (num, den) = (u128::from(num), u128::from(den));
        // (hi*2^64 + lo) * num / den, computed limb by limb.
        let hi_n = hi * num;
        let q_hi = hi_n / den;
        let r_hi = hi_n % den;
        let lo_n = (r_hi << 64) + lo * num;
        let q_lo = lo_n / den;
        Amount(q_hi.checked_shl(64).unwrap_or(0).saturating_add(q_lo))
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses `"123"` or `"123uvtr"`.
    pub fn parse_coin(s: &str) -> Result<Amount, AmountError> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, denom) = s.split_at(digits_end);
        if !denom.is_empty() && denom != DENOM {
            return Err(AmountError::Denom(denom.to_string()));
        }
        if num.is_empty() {
            return Err(AmountError::Parse(s.to_string()));
        }
        num.parse::<u128>()
            .map(Amount)
            .map_err(|_| AmountError::Parse(s.to_string()))
    }

    /// Parses a proto `Coin` (denom must be `uvtr`; amount base-10).
    pub fn from_coin(denom: &str, amount: &str) -> Result<Amount, AmountError> {
        if denom != DENOM {
            return Err(AmountError::Denom(denom.to_string()));
        }
        if amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Parse(amount.to_string()));
        }
        amount
            .parse::<u128>()
            .map(Amount)
            .map_err(|_| AmountError::Parse(amount.to_string()))
    }

    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_be_slice(b: &[u8]) -> Option<Amount> {
        <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| Amount(u128::from_be_bytes(a)))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0, DENOM)
    }
}

#[cfg(test)]
#[path = "amount_tests.rs"]
mod tests;
