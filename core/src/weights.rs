//! Weights as safetensors in PyTorch's layout and names (docs/measurements.md "Interfaces"),
//! so a model moves to and from PyTorch: MLP `layers.{i}.weight` `[out, in]`
//! and `layers.{i}.bias` `[out]`; CNN `features.{j}.*`, `classifier.*`.
//!
//! curvlab writes its architecture as JSON into the safetensors metadata
//! (`curvlab_architecture`); for files from other tools the architecture is
//! inferred from the tensor names and shapes by the registered models
//! ([`Architecture::infer`]: an MLP, a torchvision ResNet18 or VGG11).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::models::{Activation, Architecture, Model, Shapes};
use crate::{Error, Result};

const ARCH_KEY: &str = "curvlab_architecture";

/// A tensor read from a file: shape and values (converted to f32).
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Writes `model` to `path` (atomically: see [`crate::atomic`]).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    crate::atomic::write(path, &to_bytes(model)?)
}

/// The safetensors bytes of `model`.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    // (name, dtype, shape, bytes): parameters, then each BatchNorm layer's
    // running_mean, running_var and num_batches_tracked (i64 scalar), as in
    // a PyTorch state_dict.
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (s, v) in model.arch.param_specs().iter().zip(model.to_host()) {
        entries.push((s.name.clone(), Dtype::F32, s.shape.clone(), f32_bytes(&v)));
    }
    let buffers = model.buffers_to_host();
    for (i, (name, c)) in model.arch.batch_norm_layers().iter().enumerate() {
        entries.push((
            format!("{name}.running_mean"),
            Dtype::F32,
            vec![*c],
            f32_bytes(&buffers[2 * i]),
        ));
        entries.push((
            format!("{name}.running_var"),
            Dtype::F32,
            vec![*c],
            f32_bytes(&buffers[2 * i + 1]),
        ));
        entries.push((
            format!("{name}.num_batches_tracked"),
            Dtype::I64,
            vec![],
            (model.bn_updates as i64).to_le_bytes().to_vec(),
        ));
    }
    let views = entries
        .iter()
        .map(|(name, dtype, shape, b)| {
            TensorView::new(*dtype, shape.clone(), b).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Shape(format!("safetensors view: {e}")))?;
    let meta = HashMap::from([(
        ARCH_KEY.to_string(),
        serde_json::to_string(&model.arch).expect("architecture serialises"),
    )]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Shape(format!("safetensors serialise: {e}")))
}

/// Reads every tensor of a safetensors file, and its metadata.
pub fn read(path: &Path) -> Result<Contents> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|msg| Error::Weights {
        path: path.to_path_buf(),
        msg,
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: value = f · 2^-24
            return f32::from_bits(sign)
                + (if sign != 0 { -1.0 } else { 1.0 }) * f as f32 * 2f32.powi(-24);
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Tensor name → shape.
pub fn shapes(tensors: &HashMap<String, HostTensor>) -> Shapes {
    tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.shape.clone()))
        .collect()
}

/// Tensors by name, and the file's metadata.
type Contents = (HashMap<String, HostTensor>, HashMap<String, String>);

fn parse(bytes: &[u8]) -> std::result::Result<Contents, String> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            // BatchNorm's num_batches_tracked
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                return Err(format!(
                    "tensor {name}: dtype {other:?} is not a float type"
                ))
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Loads a model. The architecture comes from curvlab's metadata when present,
/// else it is inferred from the names ([`Architecture::infer`]: a
/// torchvision-style ResNet18 or VGG11, or an MLP with ReLU); a given
/// `activation` then replaces the model's where it is a setting (MLP, CNN).
/// BatchNorm running statistics are read when the model has BatchNorm.
pub fn load(path: &Path, activation: Option<Activation>, device: &Device) -> Result<Model> {
    let (tensors, meta) = read(path)?;
    let werr = |msg: String| Error::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let mut arch = match meta.get(ARCH_KEY) {
        Some(json) => serde_json::from_str::<Architecture>(json)
            .map_err(|e| werr(format!("bad {ARCH_KEY} metadata: {e}")))?,
        None => Architecture::infer(&shapes(&tensors)).map_err(werr)?,
    };
    if let Some(a) = activation {
        arch.set_activation(a);
    }
    let host = arch
        .param_specs()
        .iter()
        .map(|s| {
            let t = tensors
                .get(&s.name)
                .ok_or_else(|| werr(format!("tensor {} is missing", s.name)))?;
            if t.shape != s.shape {
                return Err(werr(format!(
                    "{} has shape {:?}, expected {:?}",
                    s.name, t.shape, s.shape
                )));
            }
            Ok(t.values.clone())
        })
        .collect::<Result<Vec<_>>>()?;
    let mut buffers = Vec::new();
    let mut updates = 0u64;
    for (name, c) in arch.batch_norm_layers() {
        for stat in ["running_mean", "running_var"] {
            let key = format!("{name}.{stat}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| werr(format!("tensor {key} is missing")))?;
            if t.shape != [c] {
                return Err(werr(format!(
                    "{key} has shape {:?}, expected [{c}]",
                    t.shape
                )));
            }
            buffers.push(t.values.clone());
        }
        if let Some(t) = tensors.get(&format!("{name}.num_batches_tracked")) {
            updates = updates.max(t.values.first().copied().unwrap_or(0.0) as u64);
        }
    }
    Model::from_host_with_buffers(&arch, &host, &buffers, updates, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Mlp, Resnet18};

    #[test]
    fn round_trip_and_inference() {
        let dev = Device::flex();
        let arch = Architecture::Mlp(Mlp {
            input_dim: 5,
            hidden: vec![4, 3],
            classes: 2,
            activation: Activation::Tanh,
        });
        let m = Model::init(&arch, 3, &dev).unwrap();
        let dir = std::env::temp_dir().join(format!("curvlab-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.safetensors");
        save(&m, &p).unwrap();
        let back = load(&p, None, &dev).unwrap();
        assert_eq!(back.arch, arch);
        assert_eq!(back.flat(), m.flat());
        let (t, _) = read(&p).unwrap();
        assert_eq!(t["layers.0.weight"].shape, vec![4, 5]);
        assert_eq!(
            Architecture::infer(&shapes(&t)).unwrap(),
            Architecture::Mlp(Mlp {
                input_dim: 5,
                hidden: vec![4, 3],
                classes: 2,
                activation: Activation::Relu
            })
        );
        // not a safetensors file → one clear error
        std::fs::write(dir.join("bad.safetensors"), b"garbage").unwrap();
        let e = load(&dir.join("bad.safetensors"), None, &dev)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );
        assert!(matches!(
            load(&dir.join("none.safetensors"), None, &dev),
            Err(Error::MissingFile { .. })
        ));
    }

    #[test]
    fn batch_norm_model_round_trip_and_pytorch_layout() {
        let dev = Device::flex();
        let arch = Architecture::Resnet18(Resnet18 {
            in_channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            base: 2,
        });
        let mut m = Model::init(&arch, 4, &dev).unwrap();
        m.buffers = m
            .buffers
            .iter()
            .map(|b| b.clone().add_scalar(0.25))
            .collect();
        m.bn_updates = 7;
        let dir = std::env::temp_dir().join(format!("curvlab-wbn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.safetensors");
        save(&m, &p).unwrap();
        let back = load(&p, None, &dev).unwrap();
        assert_eq!(back.arch, arch);
        assert_eq!(back.flat(), m.flat());
        assert_eq!(back.buffers_to_host(), m.buffers_to_host());
        assert_eq!(back.bn_updates, 7);

        // The same tensors as a PyTorch state_dict saved by safetensors.torch.save_file:
        // torchvision names, num_batches_tracked as i64 scalars, no curvlab metadata.
        let (tensors, _) = read(&p).unwrap();
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = names
            .iter()
            .map(|n| {
                let t = &tensors[*n];
                if n.ends_with("num_batches_tracked") {
                    (
                        n.to_string(),
                        Dtype::I64,
                        vec![],
                        7i64.to_le_bytes().to_vec(),
                    )
                } else {
                    let b = t.values.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (n.to_string(), Dtype::F32, t.shape.clone(), b)
                }
            })
            .collect();
        let views: Vec<(String, TensorView)> = raw
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        let q = dir.join("torch.safetensors");
        std::fs::write(&q, bytes).unwrap();
        let t = load(&q, None, &dev).unwrap();
        assert_eq!(t.arch, arch);
        assert_eq!(t.flat(), m.flat());
        assert_eq!(t.buffers_to_host(), m.buffers_to_host());
        let x = burn::tensor::Tensor::<2>::ones([1, 3072], &dev);
        assert_eq!(
            crate::backend::tensor_to_vec(&t.forward(x.clone())),
            crate::backend::tensor_to_vec(&m.forward(x))
        );
    }

    /// Files written before the models moved into one file each carry the
    /// architecture in this JSON form: every kind still loads from it.
    #[test]
    fn files_with_the_stored_architecture_json_load() {
        let dev = Device::flex();
        let dir = std::env::temp_dir().join(format!("curvlab-wjson-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stored = [
            r#"{"kind":"mlp","input_dim":6,"hidden":[5,4],"classes":3,"activation":"gelu"}"#,
            r#"{"kind":"cnn","in_channels":2,"height":8,"width":8,"channels":[3,4],"classes":3,"activation":"tanh"}"#,
            r#"{"kind":"vgg11","in_channels":3,"height":32,"width":32,"classes":3,"base":4,"batch_norm":false}"#,
            r#"{"kind":"vgg11","in_channels":3,"height":32,"width":32,"classes":3,"base":4,"batch_norm":true}"#,
            r#"{"kind":"resnet18","in_channels":3,"height":8,"width":8,"classes":3,"base":2}"#,
        ];
        for (i, json) in stored.iter().enumerate() {
            let arch: Architecture = serde_json::from_str(json).unwrap();
            let m = Model::init(&arch, 5, &dev).unwrap();
            // the tensors as curvlab writes them, with the stored metadata verbatim
            let bytes = to_bytes(&m).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let views: Vec<(String, TensorView)> = st.tensors();
            let meta = HashMap::from([(ARCH_KEY.to_string(), json.to_string())]);
            let p = dir.join(format!("{i}.safetensors"));
            std::fs::write(&p, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
            let back = load(&p, None, &dev).unwrap();
            assert_eq!(back.arch, arch);
            assert_eq!(&serde_json::to_string(&back.arch).unwrap(), json);
            assert_eq!(back.flat(), m.flat());
            assert_eq!(back.buffers_to_host(), m.buffers_to_host());
        }
    }

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
