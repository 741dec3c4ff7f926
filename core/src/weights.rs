//! Weights as safetensors in PyTorch's layout and names (SPEC "Interfaces"),
//! so a model moves to and from PyTorch: MLP `layers.{i}.weight` `[out, in]`
//! and `layers.{i}.bias` `[out]`; CNN `features.{j}.*`, `classifier.*`.
//!
//! curvlab writes its architecture as JSON into the safetensors metadata
//! (`curvlab_architecture`); files from other tools are read as MLPs, the
//! architecture inferred from the tensor shapes.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::models::{Activation, Architecture, Model};
use crate::{Error, Result};

const ARCH_KEY: &str = "curvlab_architecture";

/// A tensor read from a file: shape and values (converted to f32).
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Writes `model` to `path`.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let bytes = to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The safetensors bytes of `model`.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let specs = model.arch.param_specs();
    let host = model.to_host();
    let raw: Vec<Vec<u8>> = host
        .iter()
        .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = specs
        .iter()
        .zip(&raw)
        .map(|(s, b)| TensorView::new(Dtype::F32, s.shape.clone(), b).map(|v| (s.name.clone(), v)))
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

/// Infers an MLP from `layers.{i}.weight|bias` tensors: the layers sorted by
/// index, each weight `[out, in]` chaining into the next.
pub fn infer_mlp(
    tensors: &HashMap<String, HostTensor>,
    activation: Activation,
) -> std::result::Result<Architecture, String> {
    let mut idx: Vec<usize> = tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix("layers.")?
                .strip_suffix(".weight")?
                .parse()
                .ok()
        })
        .collect();
    idx.sort_unstable();
    if idx.is_empty() {
        let names: Vec<_> = tensors.keys().take(5).cloned().collect();
        return Err(format!(
            "no MLP tensors 'layers.{{i}}.weight' found (tensors: {names:?})"
        ));
    }
    let mut dims = Vec::new();
    for (n, &i) in idx.iter().enumerate() {
        let w = &tensors[&format!("layers.{i}.weight")];
        if w.shape.len() != 2 {
            return Err(format!(
                "layers.{i}.weight has shape {:?}, expected [out, in]",
                w.shape
            ));
        }
        let b = tensors
            .get(&format!("layers.{i}.bias"))
            .ok_or(format!("layers.{i}.bias is missing"))?;
        if b.shape != [w.shape[0]] {
            return Err(format!(
                "layers.{i}.bias has shape {:?}, expected [{}]",
                b.shape, w.shape[0]
            ));
        }
        if n == 0 {
            dims.push(w.shape[1]);
        } else if dims[n] != w.shape[1] {
            return Err(format!(
                "layers.{i}.weight takes {} inputs but the previous layer gives {}",
                w.shape[1], dims[n]
            ));
        }
        dims.push(w.shape[0]);
    }
    let classes = *dims.last().expect("non-empty");
    Ok(Architecture::Mlp {
        input_dim: dims[0],
        hidden: dims[1..dims.len() - 1].to_vec(),
        classes,
        activation,
    })
}

/// Loads a model. The architecture comes from curvlab's metadata when present
/// (then `activation` overrides the stored one only if given), else it is
/// inferred as an MLP with `activation` (default ReLU).
pub fn load(path: &Path, activation: Option<Activation>, device: &Device) -> Result<Model> {
    let (tensors, meta) = read(path)?;
    let werr = |msg: String| Error::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let mut arch = match meta.get(ARCH_KEY) {
        Some(json) => serde_json::from_str::<Architecture>(json)
            .map_err(|e| werr(format!("bad {ARCH_KEY} metadata: {e}")))?,
        None => infer_mlp(&tensors, activation.unwrap_or_default()).map_err(werr)?,
    };
    if let Some(a) = activation {
        match &mut arch {
            Architecture::Mlp { activation, .. } | Architecture::Cnn { activation, .. } => {
                *activation = a
            }
        }
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
    Model::from_host(&arch, &host, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_inference() {
        let dev = Device::flex();
        let arch = Architecture::Mlp {
            input_dim: 5,
            hidden: vec![4, 3],
            classes: 2,
            activation: Activation::Tanh,
        };
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
            infer_mlp(&t, Activation::Relu).unwrap(),
            Architecture::Mlp {
                input_dim: 5,
                hidden: vec![4, 3],
                classes: 2,
                activation: Activation::Relu
            }
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
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
