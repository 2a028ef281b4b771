//! Losses as integers: an f32's exact value in units of 2^-32, by integer
//! operations on its bits (consensus computes with no floats).

/// Largest loss value kept exactly (2^24 nats); larger ones saturate here, so a
/// sum of [`crate::params::Params::max_eval_steps`] of them fits a u64.
pub const MAX_FIXED: u64 = 1 << 56;

/// The value of the finite, non-negative f32 with bits `bits`, in units of
/// 2^-32, rounded toward zero and saturated at [`MAX_FIXED`]. `None` for a
/// negative value, an infinity or a NaN (a cross-entropy is none of these).
pub fn from_f32_bits(bits: u32) -> Option<u64> {
    if bits >> 31 != 0 && bits != 0x8000_0000 {
        return None;
    }
    let exp = (bits >> 23) & 0xff;
    let frac = (bits & 0x7f_ffff) as u64;
    if exp == 0xff {
        return None;
    }
    // value = m * 2^(e - 150) (subnormals: e = 1 without the hidden bit).
    let (m, e) = if exp == 0 {
        (frac, 1i64)
    } else {
        (frac | 0x80_0000, exp as i64)
    };
    // In units of 2^-32: m * 2^(e - 118).
    let shift = e - 118;
    let v = if shift >= 0 {
        if shift >= 40 || (m << shift) > MAX_FIXED {
            MAX_FIXED
        } else {
            m << shift
        }
    } else if -shift >= 64 {
        0
    } else {
        m >> (-shift)
    };
    Some(v.min(MAX_FIXED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_exact_for_dyadic_values_and_truncates_below_the_unit() {
        let f = |x: f32| from_f32_bits(x.to_bits()).unwrap();
        assert_eq!(f(0.0), 0);
        assert_eq!(from_f32_bits(0x8000_0000), Some(0), "-0 is 0");
        assert_eq!(f(1.0), 1 << 32);
        assert_eq!(f(2.5), 5 << 31);
        assert_eq!(f(0.75), 3 << 30);
        assert_eq!(f(2.0f32.powi(-32)), 1);
        assert_eq!(f(2.0f32.powi(-33)), 0);
        assert_eq!(f(f32::from_bits(1)), 0, "the smallest subnormal");
        assert_eq!(f(1e30), MAX_FIXED);
        // Every loss a model reports converts to the f64 value, truncated.
        for x in [4.852_03f32, 0.123_456, 2.171_9, 1e-5, 12_345.678] {
            assert_eq!(f(x), (x as f64 * 4_294_967_296.0).floor() as u64, "{x}");
        }
        for bad in [-1.0f32, f32::INFINITY, f32::NAN, f32::NEG_INFINITY] {
            assert_eq!(from_f32_bits(bad.to_bits()), None, "{bad}");
        }
    }
}
