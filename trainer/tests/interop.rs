//! torch-uncertainty interchange: `trainer import` of a `bayesian_lenet` that torch-uncertainty
//! 0.13 trained and saved (a checked-in fixture, so no Python is needed), `trainer export
//! --format safetensors`, their round trip, and a one-line error for every malformed input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tinyvi::arch::IMAGE_LEN;
use tinyvi::{Config, LeNet, Mode, Scratch};
use trainer::interop::{self, names};
use trainer::model::Lenet;

use common::{data_dir, text};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/torch-uncertainty")
}

/// The `bayesian_lenet` torch-uncertainty trained (`make_fixture.py train`).
fn fixture() -> Vec<u8> {
    std::fs::read(fixtures().join("bayesian_lenet.safetensors")).expect("fixture")
}

/// The frozen softmax that Python wrote, and the SHA-256 of the file it was computed from.
fn python_probs(json: &str) -> (Vec<[f32; 10]>, String) {
    let text = std::fs::read_to_string(fixtures().join(json)).expect("fixture json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let probs = doc["probs"]
        .as_array()
        .expect("probs")
        .iter()
        .map(|row| {
            let r: Vec<f32> = row
                .as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect();
            r.try_into().expect("10 classes")
        })
        .collect();
    (probs, doc["source_sha256"].as_str().expect("sha").into())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// tinyvi's mean-mode probabilities of the first `n` MNIST test images, through the core.
fn mean_probs(model_file: &[u8], n: usize) -> Vec<[f32; 10]> {
    let (_, test) = trainer::data::mnist::load_mnist(&data_dir()).expect("MNIST");
    let model = tinyvi::Model::from_bytes(model_file).expect("model");
    let net = LeNet::new(&model).expect("LeNet");
    let mut scratch = Scratch::new();
    let config = Config {
        samples: 1,
        seed: 0,
        mode: Mode::Mean,
        threshold: None,
    };
    test.images[..n * IMAGE_LEN]
        .chunks_exact(IMAGE_LEN)
        .map(|img| {
            net.predict(img, &config, &mut scratch)
                .expect("predict")
                .probs
        })
        .collect()
}

fn max_abs_diff(a: &[[f32; 10]], b: &[[f32; 10]]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("run trainer")
}

#[test]
fn torch_uncertaintys_model_gives_its_frozen_probabilities_in_mean_mode() {
    let bytes = fixture();
    let (python, sha) = python_probs("bayesian_lenet.json");
    assert_eq!(sha, sha256(&bytes), "the JSON belongs to another file");
    let model = interop::import_to_model_file(&bytes).expect("import");
    let ours = mean_probs(&model, python.len());
    let d = max_abs_diff(&ours, &python);
    println!(
        "max |tinyvi mean − torch-uncertainty frozen| = {d:e} over {} images",
        python.len()
    );
    assert!(python.len() >= 300);
    assert!(d <= 1e-4, "{d}");
    // Not a vacuous match: the model is confident and mostly right.
    let (_, test) = trainer::data::mnist::load_mnist(&data_dir()).expect("MNIST");
    let argmax = |p: &[f32; 10]| (0..10).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
    let right = ours
        .iter()
        .zip(&test.labels)
        .filter(|(p, &l)| argmax(p) == l as usize)
        .count();
    assert!(right * 100 >= ours.len() * 85, "{right}/{}", ours.len());
}

/// A tinyvi model exported to safetensors, loaded by torch-uncertainty with
/// `load_model(strict=True)` and run frozen (`make_fixture.py load`, on the file this test
/// writes to target/tinyvi-tests/interop/tinyvi_export.safetensors), gives tinyvi's
/// mean-mode probabilities.
#[test]
fn a_tinyvi_export_gives_tinyvis_probabilities_in_torch_uncertainty() {
    let model = trainer::model::export::export(&Lenet::init(3), None);
    let exported = interop::export(&model).expect("export");
    assert_eq!(exported.inexact, 0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tinyvi-tests/interop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tinyvi_export.safetensors"), &exported.bytes).unwrap();
    let (python, sha) = python_probs("tinyvi_export.json");
    assert_eq!(
        sha,
        sha256(&exported.bytes),
        "the export changed: run make_fixture.py load again (reference/torch-uncertainty/README.md)"
    );
    let ours = mean_probs(&model, python.len());
    let d = max_abs_diff(&ours, &python);
    println!("max |torch-uncertainty frozen − tinyvi mean| = {d:e}");
    assert!(d <= 1e-4, "{d}");
    // The probabilities differ between images (not all uniform).
    assert!(max_abs_diff(&ours[..1], &ours[1..2]) > 1e-3);
}

/// Tensors of a safetensors file: name → (dtype, shape).
fn layout(bytes: &[u8]) -> Vec<(String, Dtype, Vec<usize>)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| (k, t.dtype(), t.shape().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn the_export_has_exactly_the_tensors_save_model_writes() {
    let model = interop::import_to_model_file(&fixture()).unwrap();
    let exported = interop::export(&model).unwrap();
    assert_eq!(layout(&exported.bytes), layout(&fixture()));
    assert_eq!(layout(&fixture()).len(), names::saved_keys().len());
}

/// export → import rewrites the model file byte for byte: for the imported fixture, for a
/// model trained by tinyvi (with an OOD threshold), and through the command line.
#[test]
fn export_then_import_gives_back_the_same_model_file() {
    let imported = interop::import_to_model_file(&fixture()).unwrap();
    let again = interop::export(&imported).unwrap();
    assert_eq!(again.inexact, 0);
    assert_eq!(
        interop::import_to_model_file(&again.bytes).unwrap(),
        imported
    );

    let (train, _) = trainer::data::mnist::load_mnist(&data_dir()).expect("MNIST");
    let n = 20 * 128;
    let mut model = Lenet::init(11);
    let cfg = trainer::train::TrainConfig {
        seed: 11,
        threads: 2,
        ..Default::default()
    };
    trainer::train::train(
        &mut model,
        &train.images[..n * IMAGE_LEN],
        &train.labels[..n],
        &cfg,
        &mut |_| {},
    )
    .expect("training");
    let ood = tinyvi::format::OodThreshold {
        score: tinyvi::format::OodScore::MutualInformation,
        value: 0.123_456_79,
    };
    let trained = trainer::model::export::export(&model, Some(ood));
    let exported = interop::export(&trained).unwrap();
    assert_eq!(exported.inexact, 0);
    assert_eq!(
        interop::import_to_model_file(&exported.bytes).unwrap(),
        trained
    );

    let dir = tempfile::tempdir().unwrap();
    let m = common::write(dir.path(), "model.postcard", &trained);
    let st = dir.path().join("model.safetensors");
    let back = dir.path().join("back.postcard");
    let again = dir.path().join("again.postcard");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    for args in [
        vec![
            "export".into(),
            s(&m),
            "--format".into(),
            "safetensors".into(),
            "--out".into(),
            s(&st),
        ],
        vec!["import".into(), s(&st), "--out".into(), s(&back)],
        vec!["export".into(), s(&back), "--out".into(), s(&again)],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = trainer(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    assert_eq!(std::fs::read(&back).unwrap(), trained);
    assert_eq!(std::fs::read(&again).unwrap(), trained);
}

/// Every name the state dict may use: `weight_sampler.mu` for `weight_mu` and so on, with or
/// without `core_model.`, in f16/bf16/f64 when lossless, all give the same model.
#[test]
fn either_name_of_each_pair_and_lossless_dtypes_are_accepted() {
    let bytes = fixture();
    let want = interop::import_to_model_file(&bytes).unwrap();
    let both = rewrite(&bytes, |t| {
        let mut out = vec![t.clone()];
        if let Some(names::Key::Param(_, p)) = names::parse(&t.0) {
            let [a, b] = p.aliases();
            let other = if t.0.ends_with(a) {
                t.0.replace(a, b)
            } else {
                t.0.replace(b, a)
            };
            out.push((other, t.1, t.2.clone(), t.3.clone()));
        }
        out
    });
    assert_eq!(layout(&both).len(), 5 * 4 * 2 + 5 * 6);
    assert_eq!(interop::import_to_model_file(&both).unwrap(), want);
    let bare = rewrite(&both, |t| {
        vec![(
            t.0.trim_start_matches(names::PREFIX).into(),
            t.1,
            t.2.clone(),
            t.3.clone(),
        )]
    });
    assert_eq!(interop::import_to_model_file(&bare).unwrap(), want);
    let no_priors = rewrite(&bytes, |t| {
        if t.0.contains("prior") {
            vec![]
        } else {
            vec![t.clone()]
        }
    });
    assert_eq!(interop::import_to_model_file(&no_priors).unwrap(), want);
    let f64s = rewrite(&bytes, |t| {
        vec![if t.1 == Dtype::F32 && !t.0.contains("prior") {
            (
                t.0.clone(),
                Dtype::F64,
                t.2.clone(),
                map_f32(&t.3, |x| f64::from(x).to_le_bytes().to_vec()),
            )
        } else {
            t.clone()
        }]
    });
    assert_eq!(interop::import_to_model_file(&f64s).unwrap(), want);
    // f16 and bf16 widen exactly: the model holds the f16 values.
    let f16 = rewrite(&bytes, |t| {
        vec![if t.0.ends_with("bias_mu") {
            (
                t.0.clone(),
                Dtype::F16,
                t.2.clone(),
                map_f32(&t.3, |x| half::f16::from_f32(x).to_le_bytes().to_vec()),
            )
        } else if t.0.ends_with("fc3.weight_mu") {
            (
                t.0.clone(),
                Dtype::BF16,
                t.2.clone(),
                map_f32(&t.3, |x| half::bf16::from_f32(x).to_le_bytes().to_vec()),
            )
        } else {
            t.clone()
        }]
    });
    let m = interop::import(&f16).unwrap().model;
    let r = trainer::nn::lenet::LAYERS[4];
    let orig = interop::import(&bytes).unwrap().model;
    for i in r.w..r.b {
        assert_eq!(m.mu[i], half::bf16::from_f32(orig.mu[i]).to_f32());
    }
    for i in r.b..r.end {
        assert_eq!(m.mu[i], half::f16::from_f32(orig.mu[i]).to_f32());
    }
}

type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn tensors(bytes: &[u8]) -> Vec<Tensor> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut v: Vec<Tensor> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| (k, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn serialize(ts: &[Tensor], meta: Option<Vec<(&str, &str)>>) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = ts
        .iter()
        .map(|(k, d, s, b)| (k.as_str(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = meta.map(|m| m.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
    safetensors::tensor::serialize(views, meta).unwrap()
}

/// The file with every tensor replaced by what `f` returns for it.
fn rewrite(bytes: &[u8], f: impl Fn(&Tensor) -> Vec<Tensor>) -> Vec<u8> {
    let ts: Vec<Tensor> = tensors(bytes).iter().flat_map(f).collect();
    serialize(&ts, None)
}

fn map_f32(data: &[u8], f: impl Fn(f32) -> Vec<u8>) -> Vec<u8> {
    data.chunks_exact(4)
        .flat_map(|c| f(f32::from_le_bytes(c.try_into().unwrap())))
        .collect()
}

/// The fixture with one tensor's data changed.
fn poke(bytes: &[u8], name: &str, f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    rewrite(bytes, |t| {
        let mut t = t.clone();
        if t.0 == name {
            f(&mut t.3);
        }
        vec![t]
    })
}

#[test]
fn every_malformed_input_gets_a_one_line_error_naming_the_tensor_and_a_failing_exit() {
    let good = fixture();
    let set_f32 = |i: usize, v: f32| {
        move |d: &mut Vec<u8>| d[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes())
    };
    let add = |extra: Tensor| {
        let mut ts = tensors(&good);
        ts.push(extra);
        serialize(&ts, None)
    };
    let w1 = "core_model.conv1.weight_mu";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not safetensors", b"PK\x03\x04 a zip file".to_vec(), "not a safetensors file"),
        ("empty", Vec::new(), "not a safetensors file"),
        (
            "a deterministic LeNet's key",
            add(("core_model.conv1.weight".into(), Dtype::F32, vec![6, 1, 5, 5], vec![0; 600])),
            "`core_model.conv1.weight` is not a parameter of torch-uncertainty's bayesian_lenet",
        ),
        (
            "a sixth layer",
            add(("core_model.fc4.weight_mu".into(), Dtype::F32, vec![10, 10], vec![0; 400])),
            "`core_model.fc4.weight_mu` is not a parameter",
        ),
        (
            "missing tensor",
            rewrite(&good, |t| if t.0 == "core_model.fc2.bias_sampler.rho" { vec![] } else { vec![t.clone()] }),
            "`core_model.fc2.bias_sigma` is missing",
        ),
        (
            "5 classes",
            rewrite(&good, |t| {
                let mut t = t.clone();
                if t.0 == "core_model.fc3.weight_mu" || t.0 == "core_model.fc3.weight_sampler.rho" {
                    t.2 = vec![5, 84];
                    t.3.truncate(5 * 84 * 4);
                }
                vec![t]
            }),
            "`core_model.fc3.weight_mu` has shape [5, 84], bayesian_lenet(1, 10) has [10, 84]",
        ),
        (
            "transposed",
            rewrite(&good, |t| {
                let mut t = t.clone();
                if t.0 == "core_model.fc1.weight_sampler.rho" {
                    t.2 = vec![256, 120];
                }
                vec![t]
            }),
            "`core_model.fc1.weight_sampler.rho` has shape [256, 120]",
        ),
        ("NaN mean", poke(&good, w1, set_f32(3, f32::NAN)), "`core_model.conv1.weight_mu` element 3 is NaN"),
        (
            "infinite ρ",
            poke(&good, "core_model.fc1.bias_sampler.rho", set_f32(0, f32::NEG_INFINITY)),
            "`core_model.fc1.bias_sampler.rho` element 0 is -inf",
        ),
        (
            "ρ whose variance overflows",
            poke(&good, "core_model.fc1.bias_sampler.rho", set_f32(7, 1e20)),
            "`core_model.fc1.bias_sampler.rho` element 7: ρ = 1e20 gives an infinite variance",
        ),
        (
            "int32 weights",
            rewrite(&good, |t| {
                let mut t = t.clone();
                if t.0 == w1 {
                    t.1 = Dtype::I32;
                }
                vec![t]
            }),
            "`core_model.conv1.weight_mu` has dtype I32, which does not convert to f32 without loss",
        ),
        (
            "f64 beyond f32",
            rewrite(&good, |t| {
                let mut t = t.clone();
                if t.0 == w1 {
                    t.1 = Dtype::F64;
                    t.3 = map_f32(&t.3, |x| f64::from(x).to_le_bytes().to_vec());
                    t.3[8 * 2..8 * 3].copy_from_slice(&0.1f64.to_le_bytes());
                }
                vec![t]
            }),
            "`core_model.conv1.weight_mu` (F64) element 2 = 1e-1 is not representable as f32",
        ),
        (
            "duplicates that disagree",
            add(("conv2.weight_sampler.mu".into(), Dtype::F32, vec![16, 6, 5, 5], vec![0; 2400 * 4])),
            "tensors `conv2.weight_sampler.mu` and `core_model.conv2.weight_mu` are the same parameter but differ at element 0",
        ),
        (
            "another prior",
            poke(&good, "core_model.fc2.weight_prior_dist.sigmas", set_f32(0, 1.0)),
            "`core_model.fc2.weight_prior_dist.sigmas` is [1.0, 0.4], bayesian_lenet's prior has [0.1, 0.4]",
        ),
        (
            "a mixture prior",
            poke(&good, "core_model.conv1.bias_prior_dist.pi", |d| {
                d[..8].copy_from_slice(&0i64.to_le_bytes());
                d[8..].copy_from_slice(&1i64.to_le_bytes());
            }),
            "`core_model.conv1.bias_prior_dist.pi` is [0.0, 1.0]",
        ),
        (
            "bad OOD metadata",
            serialize(&tensors(&good), Some(vec![("tinyvi.ood_score", "entropy"), ("tinyvi.ood_threshold", "NaN")])),
            "metadata `tinyvi.ood_threshold` = \"NaN\" is not valid",
        ),
        (
            "half the OOD metadata",
            serialize(&tensors(&good), Some(vec![("tinyvi.ood_score", "variance")])),
            "metadata `tinyvi.ood_score` = \"variance\" is not valid",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, bytes, needle) in cases {
        let input = common::write(dir.path(), "bad.safetensors", &bytes);
        let out = dir.path().join("model.postcard");
        let o = trainer(&[
            "import",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: accepted\n{}", text(&o));
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {}: ", input.display())) && stderr.contains(needle),
            "{what}: expected `{needle}` in: {stderr}"
        );
        assert!(!out.exists(), "{what}: wrote a model");
        // The library gives the same message.
        assert!(
            interop::import(&bytes)
                .unwrap_err()
                .to_string()
                .contains(needle)
                || needle.contains("not a safetensors")
        );
    }
    // The good file passes the same command.
    let input = common::write(dir.path(), "good.safetensors", &good);
    let out = dir.path().join("model.postcard");
    let o = trainer(&[
        "import",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(tinyvi::Model::from_bytes(&std::fs::read(&out).unwrap()).is_ok());
}

#[test]
fn export_refuses_what_is_not_a_lenet_model_file_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = common::write(dir.path(), "bad.postcard", b"not a model");
    let out = dir.path().join("x.safetensors");
    for format in ["safetensors", "postcard"] {
        let o = trainer(&[
            "export",
            bad.to_str().unwrap(),
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{}", text(&o));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: {}: ", bad.display())),
            "{stderr}"
        );
        assert!(!out.exists());
    }
}

/// The imported model goes through `trainer eval` in every mode, with the accuracy
/// torch-uncertainty's one-epoch model has.
#[test]
fn the_imported_model_evaluates_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "bayesian_lenet.safetensors", &fixture());
    let model = dir.path().join("model.postcard");
    let o = trainer(&[
        "import",
        input.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let data = data_dir();
    for mode in ["mean", "weights", "local-reparam"] {
        let out = dir.path().join(mode);
        let o = trainer(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--mode",
            mode,
            "--samples",
            "4",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        let acc = m["acc"].as_f64().unwrap();
        println!("{mode}: acc {acc}");
        assert!(acc > 0.85, "{mode}: acc {acc}");
    }
}
