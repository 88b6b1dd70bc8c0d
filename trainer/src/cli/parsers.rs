//! Value parsers of the flags: each refuses a bad value with a one-line reason.

use crate::train::MAX_CROP_PAD;

/// A whole number ≥ 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    let v: i128 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if v < 1 {
        return Err(format!("must be at least 1, got {v}"));
    }
    usize::try_from(v).map_err(|_| format!("{v} is too large"))
}

/// A finite number.
fn finite_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("must be a finite number, got {s}"));
    }
    Ok(v)
}

/// A finite number > 0.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if v <= 0.0 {
        return Err(format!("must be greater than 0, got {s}"));
    }
    Ok(v)
}

/// `--kl-weight`: a finite number ≥ 0, or a fraction `a/b` of such numbers (e.g. `1/60000`).
pub fn kl_weight(s: &str) -> Result<f64, String> {
    let v = match s.split_once('/') {
        Some((a, b)) => {
            let (a, b) = (finite_f64(a)?, finite_f64(b)?);
            if b == 0.0 {
                return Err(format!("division by zero in {s}"));
            }
            a / b
        }
        None => finite_f64(s)?,
    };
    if v < 0.0 {
        return Err(format!("must not be negative, got {s}"));
    }
    Ok(v)
}

/// `--crop-pad`: 0 to [`MAX_CROP_PAD`].
pub fn crop_pad(s: &str) -> Result<usize, String> {
    let v: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of pixels"))?;
    if v > MAX_CROP_PAD {
        return Err(format!("must be at most {MAX_CROP_PAD}, got {v}"));
    }
    Ok(v)
}

/// `STEP:LAYER` with LAYER in 0..5.
pub fn step_layer(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("expected STEP:LAYER")?;
    let step = a.parse().map_err(|_| format!("bad step {a:?}"))?;
    let layer = b.parse().map_err(|_| format!("bad layer {b:?}"))?;
    if layer >= 5 {
        return Err(format!("layer {layer} is not in 0..5"));
    }
    Ok((step, layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_weight_parses_numbers_and_fractions() {
        assert_eq!(kl_weight("2e-5"), Ok(2e-5));
        assert_eq!(kl_weight("1/60000"), Ok(1.0 / 60000.0));
        assert_eq!(kl_weight(" 3 / 4 "), Ok(0.75));
        assert_eq!(kl_weight("0"), Ok(0.0));
        for (bad, why) in [
            ("1/0", "division by zero"),
            ("-1/5", "must not be negative"),
            ("a/b", "not a number"),
            ("1/2/3", "not a number"),
            ("inf", "finite"),
            ("", "not a number"),
        ] {
            let e = kl_weight(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
