//! Reading and writing torch-uncertainty's `bayesian_lenet` as a safetensors file.
//!
//! Import: every tensor's key is resolved by [`names::parse`] (either name of each shared pair,
//! with or without the `core_model.` prefix); each of the 20 parameter arrays must be present
//! with its shape, finite, and f32 or convertible to f32 without loss (f16, bf16, or f64 holding
//! f32 values); duplicates must hold the same values; prior entries, where present, must be
//! `bayesian_lenet`'s. ρ becomes σ² = softplus(ρ)² through the trainer's own export.
//!
//! Export: the keys `save_model` writes, μ as stored, ρ from [`rho::rho_for_variance`], the
//! priors, and the model's OOD threshold in the file's metadata, so that importing the export
//! gives back the same model file.

use std::collections::{BTreeMap, HashMap};

use ::safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tinyvi::arch::{LENET_INPUT, LENET_LAYERS};
use tinyvi::format::{LayerKind, OodScore, OodThreshold};

use super::names::{self, Key, Param, PriorEntry, LAYERS};
use super::rho;
use crate::model::Lenet;
use crate::nn::lenet::LAYERS as RANGES;

/// Metadata key of the OOD score (`entropy` or `mutual_information`).
pub const META_OOD_SCORE: &str = "tinyvi.ood_score";
/// Metadata key of the OOD threshold (nats, the f32's shortest decimal form).
pub const META_OOD_THRESHOLD: &str = "tinyvi.ood_threshold";

/// Why a file cannot be imported or exported. `Display` is one line naming the tensor.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InteropError {
    /// The bytes are not a safetensors file.
    #[error("not a safetensors file: {0}")]
    NotSafetensors(String),
    /// A key that `bayesian_lenet` does not have (another architecture or another model).
    #[error("tensor `{0}` is not a parameter of torch-uncertainty's bayesian_lenet (expected core_model.{{conv1,conv2,fc1,fc2,fc3}}.{{weight_mu,weight_sigma,bias_mu,bias_sigma,…}}): another architecture?")]
    UnknownTensor(String),
    /// A required parameter array is missing under both of its names.
    #[error("tensor `{0}` is missing (also looked for `{1}`, with and without `core_model.`)")]
    Missing(String, String),
    /// A tensor has the wrong shape.
    #[error("tensor `{tensor}` has shape {found:?}, bayesian_lenet(1, 10) has {expected:?}")]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor's dtype cannot be converted to f32 without loss.
    #[error("tensor `{tensor}` has dtype {dtype}, which does not convert to f32 without loss (F32, F16, BF16 and F64 holding f32 values do)")]
    Dtype { tensor: String, dtype: String },
    /// An f64 value that is not an f32 value.
    #[error("tensor `{tensor}` (F64) element {index} = {value:e} is not representable as f32")]
    Lossy {
        tensor: String,
        index: usize,
        value: f64,
    },
    /// NaN or ±∞ in a parameter.
    #[error("tensor `{tensor}` element {index} is {value} (not finite)")]
    NonFinite {
        tensor: String,
        index: usize,
        value: f32,
    },
    /// ρ so large that σ² = softplus(ρ)² overflows f32.
    #[error("tensor `{tensor}` element {index}: ρ = {value:e} gives an infinite variance")]
    VarianceOverflow {
        tensor: String,
        index: usize,
        value: f32,
    },
    /// Two names of one shared tensor hold different values.
    #[error("tensors `{0}` and `{1}` are the same parameter but differ at element {2}")]
    Disagree(String, String, usize),
    /// A prior entry that is not `bayesian_lenet`'s.
    #[error("tensor `{tensor}` is {found:?}, bayesian_lenet's prior has {expected:?} (tinyvi trains and runs with that prior only)")]
    Prior {
        tensor: String,
        expected: [f32; 2],
        found: Vec<f32>,
    },
    /// Bad tinyvi metadata.
    #[error("metadata `{0}` = {1:?} is not valid ({2})")]
    Metadata(String, String, &'static str),
    /// The model file cannot be exported (not a LeNet, unreadable) or encoded.
    #[error("{0}")]
    Model(String),
}

/// The values of a tensor as f32, if its dtype converts without loss.
fn to_f32(name: &str, t: &TensorView<'_>) -> Result<Vec<f32>, InteropError> {
    let d = t.data();
    let lossy = |index, value| InteropError::Lossy {
        tensor: name.to_string(),
        index,
        value,
    };
    Ok(match t.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => {
            let mut out = Vec::with_capacity(d.len() / 8);
            for (i, c) in d.chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes(c.try_into().expect("8 bytes"));
                let f = v as f32;
                // NaN and ±∞ convert as themselves and are refused as non-finite later.
                if f64::from(f) != v && !v.is_nan() {
                    return Err(lossy(i, v));
                }
                out.push(f);
            }
            out
        }
        other => {
            return Err(InteropError::Dtype {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// A prior entry's values as f32 (integers as numbers; the check compares values only).
fn prior_values(name: &str, t: &TensorView<'_>) -> Result<Vec<f32>, InteropError> {
    let d = t.data();
    Ok(match t.dtype() {
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f32)
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => to_f32(name, t)?,
    })
}

/// The shape torch-uncertainty gives parameter `p` of layer `l`.
pub fn shape(l: usize, p: Param) -> Vec<usize> {
    match (LENET_LAYERS[l].0, p.is_weight()) {
        (
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
            },
            true,
        ) => vec![
            out_channels.into(),
            in_channels.into(),
            kernel.into(),
            kernel.into(),
        ],
        (
            LayerKind::Linear {
                in_features,
                out_features,
            },
            true,
        ) => vec![out_features.into(), in_features.into()],
        (LayerKind::Conv2d { out_channels, .. }, false) => vec![out_channels.into()],
        (LayerKind::Linear { out_features, .. }, false) => vec![out_features.into()],
    }
}

/// A model read from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// μ and ρ.
    pub model: Lenet,
    /// The OOD threshold from the file's tinyvi metadata (files written by [`export`]).
    pub ood: Option<OodThreshold>,
}

/// Reads a `bayesian_lenet` state dict (see the module doc for what is accepted).
pub fn import(bytes: &[u8]) -> Result<Imported, InteropError> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| InteropError::NotSafetensors(e.to_string()))?;
    let mut by_key: BTreeMap<Key, Vec<(String, TensorView<'_>)>> = BTreeMap::new();
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in tensors {
        let key = names::parse(&name).ok_or_else(|| InteropError::UnknownTensor(name.clone()))?;
        by_key.entry(key).or_default().push((name, view));
    }
    let mut model = Lenet {
        mu: vec![0.0; crate::nn::lenet::PARAMS],
        rho: vec![0.0; crate::nn::lenet::PARAMS],
    };
    for (l, range) in RANGES.iter().enumerate() {
        for p in Param::ALL {
            let [a, b] = p.aliases();
            let found = by_key.get(&Key::Param(l, p)).ok_or_else(|| {
                InteropError::Missing(
                    format!("{}{}.{a}", names::PREFIX, LAYERS[l]),
                    format!("{}.{b}", LAYERS[l]),
                )
            })?;
            let expected = shape(l, p);
            let mut first: Option<(&str, Vec<f32>)> = None;
            for (name, view) in found {
                if view.shape() != expected.as_slice() {
                    return Err(InteropError::Shape {
                        tensor: name.clone(),
                        expected,
                        found: view.shape().to_vec(),
                    });
                }
                let values = to_f32(name, view)?;
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(InteropError::NonFinite {
                        tensor: name.clone(),
                        index: i,
                        value: values[i],
                    });
                }
                if p.is_rho() {
                    if let Some(i) = values.iter().position(|&r| !rho::variance(r).is_finite()) {
                        return Err(InteropError::VarianceOverflow {
                            tensor: name.clone(),
                            index: i,
                            value: values[i],
                        });
                    }
                }
                match &first {
                    None => first = Some((name, values)),
                    Some((first_name, v0)) => {
                        if let Some(i) = v0
                            .iter()
                            .zip(&values)
                            .position(|(x, y)| x.to_bits() != y.to_bits())
                        {
                            return Err(InteropError::Disagree(
                                first_name.to_string(),
                                name.clone(),
                                i,
                            ));
                        }
                    }
                }
            }
            let (_, values) = first.expect("at least one tensor per key");
            let dst = match p {
                Param::WeightMu => &mut model.mu[range.w..range.b],
                Param::WeightRho => &mut model.rho[range.w..range.b],
                Param::BiasMu => &mut model.mu[range.b..range.end],
                Param::BiasRho => &mut model.rho[range.b..range.end],
            };
            dst.copy_from_slice(&values);
        }
    }
    for (key, found) in &by_key {
        let Key::Prior(l, _, entry) = *key else {
            continue;
        };
        for (name, view) in found {
            let values = prior_values(name, view)?;
            let expected = entry.expected(names::is_conv(l));
            if values != expected {
                return Err(InteropError::Prior {
                    tensor: name.clone(),
                    expected,
                    found: values,
                });
            }
        }
    }
    let ood = read_ood(bytes)?;
    Ok(Imported { model, ood })
}

/// The OOD threshold of the file's tinyvi metadata, if it has one.
fn read_ood(bytes: &[u8]) -> Result<Option<OodThreshold>, InteropError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| InteropError::NotSafetensors(e.to_string()))?;
    let Some(m) = meta.metadata() else {
        return Ok(None);
    };
    let (score, value) = (m.get(META_OOD_SCORE), m.get(META_OOD_THRESHOLD));
    let (score, value) = match (score, value) {
        (None, None) => return Ok(None),
        (Some(s), Some(v)) => (s, v),
        (Some(s), None) => {
            return Err(InteropError::Metadata(
                META_OOD_SCORE.into(),
                s.clone(),
                "without tinyvi.ood_threshold",
            ))
        }
        (None, Some(v)) => {
            return Err(InteropError::Metadata(
                META_OOD_THRESHOLD.into(),
                v.clone(),
                "without tinyvi.ood_score",
            ))
        }
    };
    let score = match score.as_str() {
        "entropy" => OodScore::Entropy,
        "mutual_information" => OodScore::MutualInformation,
        _ => {
            return Err(InteropError::Metadata(
                META_OOD_SCORE.into(),
                score.clone(),
                "expected entropy or mutual_information",
            ))
        }
    };
    let value = value
        .parse::<f32>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            InteropError::Metadata(
                META_OOD_THRESHOLD.into(),
                value.clone(),
                "expected a finite number ≥ 0",
            )
        })?;
    Ok(Some(OodThreshold { score, value }))
}

/// Reads a `bayesian_lenet` state dict and encodes it as a tinyvi model file.
pub fn import_to_model_file(bytes: &[u8]) -> Result<Vec<u8>, InteropError> {
    let imported = import(bytes)?;
    crate::model::export::try_export(&imported.model, imported.ood)
        .map_err(|e| InteropError::Model(format!("cannot encode the model: {e}")))
}

/// A model file written as safetensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    /// The safetensors file.
    pub bytes: Vec<u8>,
    /// Variances no f32 ρ reproduces exactly (the nearest was written; 0 for every model the
    /// trainer wrote or imported).
    pub inexact: usize,
}

/// μ and ρ of a tinyvi LeNet model file, ρ chosen so that σ² comes back bit for bit; also
/// how many variances could not be reproduced exactly.
pub fn model_file_to_lenet(
    model_bytes: &[u8],
) -> Result<(Lenet, Option<OodThreshold>, usize), InteropError> {
    let model =
        tinyvi::Model::from_bytes(model_bytes).map_err(|e| InteropError::Model(e.to_string()))?;
    if !tinyvi::arch::is_lenet(&model) {
        return Err(InteropError::Model(
            "not the LeNet of torch-uncertainty's bayesian_lenet(1, 10)".into(),
        ));
    }
    if model.input() != LENET_INPUT {
        return Err(InteropError::Model(format!(
            "input normalisation mean {} std {} is not MNIST's {} {} (torch-uncertainty's datamodule)",
            model.input().mean,
            model.input().std,
            LENET_INPUT.mean,
            LENET_INPUT.std
        )));
    }
    let mut lenet = Lenet {
        mu: vec![0.0; crate::nn::lenet::PARAMS],
        rho: vec![0.0; crate::nn::lenet::PARAMS],
    };
    let mut var = vec![0.0; crate::nn::lenet::PARAMS];
    for (layer, r) in model.layers().iter().zip(RANGES) {
        let ok = layer.weight_mean.copy_to(&mut lenet.mu[r.w..r.b])
            && layer.bias_mean.copy_to(&mut lenet.mu[r.b..r.end])
            && layer.weight_var.copy_to(&mut var[r.w..r.b])
            && layer.bias_var.copy_to(&mut var[r.b..r.end]);
        if !ok {
            return Err(InteropError::Model(format!(
                "layer {}: bad lengths",
                r.name
            )));
        }
    }
    let mut inexact = 0;
    for (r, &v) in lenet.rho.iter_mut().zip(&var) {
        let (rho, exact) = rho::rho_for_variance(v);
        *r = rho;
        inexact += usize::from(!exact);
    }
    Ok((lenet, model.ood_threshold(), inexact))
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes μ and ρ (and an OOD threshold, as metadata) with the keys `save_model` writes for
/// torch-uncertainty's `bayesian_lenet(1, 10)`.
pub fn write(model: &Lenet, ood: Option<OodThreshold>) -> Result<Vec<u8>, InteropError> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, r) in RANGES.iter().enumerate() {
        for p in Param::ALL {
            let values = match p {
                Param::WeightMu => &model.mu[r.w..r.b],
                Param::WeightRho => &model.rho[r.w..r.b],
                Param::BiasMu => &model.mu[r.b..r.end],
                Param::BiasRho => &model.rho[r.b..r.end],
            };
            owned.push((
                names::param_key(l, p),
                Dtype::F32,
                shape(l, p),
                le_bytes_f32(values),
            ));
        }
        for weight in [true, false] {
            for e in PriorEntry::ALL {
                let [a, b] = e.expected(names::is_conv(l));
                let (dtype, data) = match e {
                    // torch-uncertainty keeps π as int64.
                    PriorEntry::Pi => (
                        Dtype::I64,
                        [a as i64, b as i64]
                            .iter()
                            .flat_map(|x| x.to_le_bytes())
                            .collect(),
                    ),
                    _ => (Dtype::F32, le_bytes_f32(&[a, b])),
                };
                owned.push((names::prior_key(l, weight, e), dtype, vec![2], data));
            }
        }
    }
    let views = owned
        .iter()
        .map(|(k, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (k.as_str(), v))
                .map_err(|e| InteropError::Model(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(t) = ood {
        let score = match t.score {
            OodScore::Entropy => "entropy",
            OodScore::MutualInformation => "mutual_information",
        };
        meta.insert(META_OOD_SCORE.into(), score.into());
        meta.insert(META_OOD_THRESHOLD.into(), t.value.to_string());
    }
    ::safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| InteropError::Model(format!("cannot write safetensors: {e}")))
}

/// Exports a tinyvi LeNet model file as a torch-uncertainty `bayesian_lenet` safetensors file.
pub fn export(model_bytes: &[u8]) -> Result<Exported, InteropError> {
    let (lenet, ood, inexact) = model_file_to_lenet(model_bytes)?;
    Ok(Exported {
        bytes: write(&lenet, ood)?,
        inexact,
    })
}
