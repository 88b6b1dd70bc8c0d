//! The training options' values on the command line: clap's view of the configuration's enums,
//! kept here so that the training core does not depend on clap.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::train::{KlMode, KlReduction, LrSchedule};

/// `ValueEnum` for an option enum with `ALL` and `name()`, each value with its help line.
macro_rules! value_enum {
    ($t:ty { $($variant:path => $help:expr,)+ }) => {
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &<$t>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                let help = match self {
                    $($variant => $help,)+
                };
                Some(PossibleValue::new(self.name()).help(help))
            }
        }
    };
}

value_enum!(KlMode {
    KlMode::Mc => "Monte Carlo: `log q(w) − log p(w)` at the sampled weights (torch-uncertainty's)",
    KlMode::Closed => "Closed form for the Gaussian prior N(0, σ₁²): per parameter `ln(σ₁/σ) + (σ² + μ²)/(2σ₁²) − 1/2` (refused for a mixture prior). torch-uncertainty's log q carries an extra `+1/2`, so the Monte Carlo value averages 1/2 per parameter below this one; the gradients have the same expectation",
});

value_enum!(KlReduction {
    KlReduction::LayerMean => "The mean over the 5 layers (torch-uncertainty's)",
    KlReduction::Sum => "The sum over all parameters (with a KL weight of 1/N: the per-example ELBO)",
});

value_enum!(LrSchedule {
    LrSchedule::Constant => "`lr` at every step",
    LrSchedule::Cosine => "`lr·½(1 + cos(π·t/T))`",
    LrSchedule::OneCycle => "Warm-up `lr/25 + (lr − lr/25)·t/W` for `t < W = 0.3·T`, then `lr/1e4 + (lr − lr/1e4)·½(1 + cos(π·(t − W)/(T − W)))`",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_to_itself() {
        for k in KlMode::ALL {
            assert_eq!(KlMode::from_str(k.name(), false), Ok(k));
        }
        for r in KlReduction::ALL {
            assert_eq!(KlReduction::from_str(r.name(), false), Ok(r));
        }
        for s in LrSchedule::ALL {
            assert_eq!(LrSchedule::from_str(s.name(), false), Ok(s));
        }
        assert_eq!(
            LrSchedule::from_str("one-cycle", false),
            Ok(LrSchedule::OneCycle)
        );
    }
}
