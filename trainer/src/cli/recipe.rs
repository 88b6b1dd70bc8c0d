//! Named training recipes (`trainer train --recipe seed|best`): the configuration each one
//! produces, and how explicit flags override it.

use super::TrainArgs;
use crate::train::{KlMode, LrSchedule, TrainConfig};

/// A named set of training settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Recipe {
    /// torch-uncertainty's tutorial: 1 epoch, batch 128, Adam 1e-3 constant, Monte Carlo KL
    /// averaged over the layers with weight 1/50000, 3 samples per step, trained on all 60,000
    /// images.
    #[default]
    Seed,
    /// The winner of the README's ablation: --epochs 15 --lr 3e-3 --lr-schedule one-cycle
    /// --kl-weight 1/60000 --train-samples 1 --crop-pad 2 --holdout 5000.
    Best,
}

impl Recipe {
    /// The recipe's configuration (seed 0, all cores).
    pub fn config(self) -> TrainConfig {
        let seed = TrainConfig::default();
        match self {
            Recipe::Seed => seed,
            Recipe::Best => TrainConfig {
                epochs: 15,
                lr: 3e-3,
                lr_schedule: LrSchedule::OneCycle,
                kl_weight: 1.0 / 60_000.0,
                train_samples: 1,
                crop_pad: 2,
                holdout: 5_000,
                ..seed
            },
        }
    }

    /// The recipe's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Seed => "seed",
            Recipe::Best => "best",
        }
    }
}

/// The configuration of a `train` command line: each flag given explicitly, else the recipe's
/// value. `--kl` defaults to closed when local reparameterisation is on (there are no sampled
/// fully connected weights to evaluate a Monte Carlo KL at).
pub fn resolve(args: &TrainArgs) -> TrainConfig {
    let r = args.recipe.config();
    let local_reparam = args.local_reparam.unwrap_or(r.local_reparam);
    let kl = match (args.kl, args.local_reparam) {
        (Some(k), _) => k,
        (None, Some(true)) => KlMode::Closed,
        (None, _) => KlMode::resolve(Some(r.kl), local_reparam),
    };
    TrainConfig {
        seed: args.seed,
        epochs: args.epochs.unwrap_or(r.epochs),
        batch_size: args.batch_size.unwrap_or(r.batch_size),
        lr: args.lr.map_or(r.lr, |v| v as f32),
        lr_schedule: args.lr_schedule.unwrap_or(r.lr_schedule),
        kl_weight: args.kl_weight.map_or(r.kl_weight, |v| v as f32),
        kl,
        kl_reduction: args.kl_reduction.unwrap_or(r.kl_reduction),
        kl_anneal_epochs: args.kl_anneal_epochs.unwrap_or(r.kl_anneal_epochs),
        train_samples: args.train_samples.unwrap_or(r.train_samples),
        crop_pad: args.crop_pad.unwrap_or(r.crop_pad),
        local_reparam,
        holdout: args.holdout.unwrap_or(r.holdout),
        temperature_scaling: args.temperature_scaling.unwrap_or(r.temperature_scaling),
        threads: args.threads.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config(argv: &[&str]) -> TrainConfig {
        let mut all = vec!["trainer", "train"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).unwrap().into_command() {
            Command::Train(t) => resolve(&t),
            _ => unreachable!(),
        }
    }

    #[test]
    fn no_flag_is_the_seed_recipe() {
        let h = config(&[]);
        assert_eq!(h, Recipe::Seed.config());
        assert_eq!(
            (h.epochs, h.batch_size, h.lr, h.train_samples, h.holdout),
            (1, 128, 1e-3, 3, 0)
        );
        assert_eq!((h.kl, h.kl_weight), (KlMode::Mc, 2e-5));
        assert_eq!(config(&["--recipe", "seed"]), h);
    }

    #[test]
    fn best_is_what_its_help_says() {
        // The doc comment of Recipe::Best (shown by --help) lists these flags.
        let spelled = config(&[
            "--epochs",
            "15",
            "--lr",
            "3e-3",
            "--lr-schedule",
            "one-cycle",
            "--kl-weight",
            "1/60000",
            "--train-samples",
            "1",
            "--crop-pad",
            "2",
            "--holdout",
            "5000",
        ]);
        assert_eq!(config(&["--recipe", "best"]), spelled);
        assert_ne!(spelled, Recipe::Seed.config());
    }

    #[test]
    fn explicit_flags_override_the_recipe() {
        let h = config(&[
            "--recipe",
            "best",
            "--epochs",
            "2",
            "--temperature-scaling",
            "--kl",
            "closed",
        ]);
        assert_eq!(h.epochs, 2);
        assert!(h.temperature_scaling);
        assert_eq!(h.kl, KlMode::Closed);
        assert_eq!(h.lr_schedule, LrSchedule::OneCycle);
        assert_eq!(h.holdout, 5000);
        // --local-reparam implies the closed KL unless --kl says otherwise.
        assert_eq!(config(&["--local-reparam"]).kl, KlMode::Closed);
        assert_eq!(config(&["--local-reparam", "--kl", "mc"]).kl, KlMode::Mc);
        assert!(config(&["--local-reparam", "--quiet"]).local_reparam);
    }
}
