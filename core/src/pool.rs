//! ReLU fused with 2×2 max-pooling (stride 2), on fixed-size arrays.

/// `out[y][x] = max(0, input[2y][2x], input[2y][2x+1], input[2y+1][2x], input[2y+1][2x+1])`.
///
/// Written with `>` comparisons from `+0.0`, so the result is the same bits on every target:
/// NaN inputs are ignored and a `−0.0` becomes `+0.0` (`f32::max` leaves both choices open).
/// `OH = H/2` and `OW = W/2` with `H`, `W` even are checked at compile time.
// Not inlined: called with a pointer into `Scratch`, the loads get small offsets
// (inlined into `predict`, the Cortex-M4 needs an address computation per load).
#[inline(never)]
pub fn relu_maxpool2<const H: usize, const W: usize, const OH: usize, const OW: usize>(
    input: &[[f32; W]; H],
    out: &mut [[f32; OW]; OH],
) {
    const { assert!(H == 2 * OH && W == 2 * OW) };
    for (orow, rows) in out.iter_mut().zip(input.chunks_exact(2)) {
        let [r0, r1] = rows else { continue };
        for (o, (a, b)) in orow
            .iter_mut()
            .zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)))
        {
            let (&[a0, a1], &[b0, b1]) = (a, b) else {
                continue;
            };
            let mut m = 0.0f32;
            for v in [a0, a1, b0, b1] {
                if v > m {
                    m = v;
                }
            }
            *o = m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_rectifies() {
        let input = [
            [1.0, -2.0, -1.0, -3.0],
            [0.5, 3.0, -0.5, -0.25],
            [f32::NAN, -1.0, 7.0, 7.5],
            [-2.0, f32::NAN, -0.0, 2.0],
        ];
        let mut out = [[9.0f32; 2]; 2];
        relu_maxpool2(&input, &mut out);
        assert_eq!(out, [[3.0, 0.0], [0.0, 7.5]]);
        assert_eq!(out[0][1].to_bits(), 0, "+0.0, not −0.0");
        assert_eq!(out[1][0].to_bits(), 0, "NaN and negatives give +0.0");
    }

    #[test]
    fn odd_trailing_rows_and_columns_are_not_needed() {
        let mut input = [[0f32; 8]; 8];
        for (y, row) in input.iter_mut().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v = (8 * y + x) as f32;
            }
        }
        let mut out = [[0f32; 4]; 4];
        relu_maxpool2(&input, &mut out);
        for (y, row) in out.iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                assert_eq!(v, (8 * (2 * y + 1) + 2 * x + 1) as f32);
            }
        }
    }
}
