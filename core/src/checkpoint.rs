//! Checkpoints of a [`Run`]: everything needed to continue it exactly where it
//! stopped — θ, BatchNorm running statistics, the momentum buffer, the
//! minibatch order and RNG states, the Lanczos warm-start vectors, and how many
//! result rows were emitted — as one safetensors file (tensors plus a JSON
//! header in its metadata).
//!
//! A resumed run on the same backend takes the same steps and produces the
//! same rows as an uninterrupted one (tested); results rows after the
//! checkpoint are produced again, so a writer truncates its results to
//! [`Checkpoint::rows`] rows before continuing.

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use web_time::Duration;

use crate::backend::read_vec;
use crate::experiment::{Run, RunConfig};
use crate::models::Model;
use crate::train::TrainerState;
use crate::{Error, Result};

const META_KEY: &str = "curvlab_checkpoint";
const VERSION: u32 = 1;

/// The header of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The run's configuration (a resume must use the same one).
    pub config: RunConfig,
    pub trainer: TrainerState,
    pub bn_updates: u64,
    /// Result rows emitted before the checkpoint.
    pub rows: usize,
    /// The step whose measurement was emitted last.
    pub measured: Option<u64>,
    pub elapsed_s: f64,
    pub params: usize,
    pub buffers: usize,
    pub velocity: usize,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Run {
    /// The run's state as checkpoint bytes. Call between events (any pending
    /// event is an error: drain [`Run::next`] first).
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        if !self.pending.is_empty() {
            return Err(Error::Config(
                "checkpoint requested with events still pending".into(),
            ));
        }
        let model = &self.trainer.model;
        let velocity = self
            .trainer
            .velocity()
            .map(|v| v.to_vec())
            .unwrap_or_default();
        let mut entries: Vec<(String, Dtype, usize, Vec<u8>)> = Vec::new();
        for (prefix, ts) in [
            ("param", &model.params),
            ("buffer", &model.buffers),
            ("velocity", &velocity),
        ] {
            for (i, t) in ts.iter().enumerate() {
                let v = read_vec(t).await?;
                entries.push((format!("{prefix}.{i}"), Dtype::F32, v.len(), f32_bytes(&v)));
            }
        }
        let (wh, wg) = self.measurer.warm_vectors();
        for (name, w) in [("warm.hessian", wh), ("warm.gauss_newton", wg)] {
            if let Some(w) = w {
                entries.push((name.into(), Dtype::F64, w.len(), f64_bytes(w)));
            }
        }
        let header = Checkpoint {
            version: VERSION,
            config: self.cfg.clone(),
            trainer: self.trainer.state(),
            bn_updates: model.bn_updates,
            rows: self.rows,
            measured: self.measured,
            elapsed_s: self.t0.elapsed().as_secs_f64(),
            params: model.params.len(),
            buffers: model.buffers.len(),
            velocity: velocity.len(),
        };
        let views = entries
            .iter()
            .map(|(n, d, len, b)| TensorView::new(*d, vec![*len], b).map(|v| (n.clone(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Shape(format!("checkpoint view: {e}")))?;
        let meta = HashMap::from([(
            META_KEY.to_string(),
            serde_json::to_string(&header).expect("checkpoint header serialises"),
        )]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Shape(format!("checkpoint serialise: {e}")))
    }

    /// Continues `cfg` from checkpoint `bytes`: sets the run up as
    /// [`Run::new`] does, then restores the saved state. The configuration
    /// must equal the checkpoint's.
    pub async fn resume(
        cfg: &RunConfig,
        device: &Device,
        bytes: &[u8],
    ) -> Result<(Run, Checkpoint)> {
        let bad = |m: String| Error::Config(format!("checkpoint: {m}"));
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a checkpoint file: {e}")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a checkpoint file: {e}")))?;
        let header: Checkpoint = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| bad("no curvlab header".into()))
            .and_then(|j| serde_json::from_str(j).map_err(|e| bad(format!("bad header: {e}"))))?;
        if header.version != VERSION {
            return Err(bad(format!(
                "version {} (expected {VERSION})",
                header.version
            )));
        }
        if &header.config != cfg {
            return Err(bad(
                "it was written by a run with a different configuration".into(),
            ));
        }
        let f32s = |name: String| -> Result<Vec<f32>> {
            let v = st.tensor(&name).map_err(|e| bad(format!("{name}: {e}")))?;
            if v.dtype() != Dtype::F32 {
                return Err(bad(format!("{name}: not f32")));
            }
            Ok(v.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let f64s = |name: &str| -> Option<Vec<f64>> {
            let v = st.tensor(name).ok()?;
            Some(
                v.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            )
        };
        let mut run = Run::new(cfg, device).await?;
        let params = (0..header.params)
            .map(|i| f32s(format!("param.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let buffers = (0..header.buffers)
            .map(|i| f32s(format!("buffer.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let model = Model::from_host_with_buffers(
            &run.trainer.model.arch,
            &params,
            &buffers,
            header.bn_updates,
            device,
        )?;
        let velocity = if header.velocity == 0 {
            None
        } else {
            Some(
                (0..header.velocity)
                    .map(|i| {
                        f32s(format!("velocity.{i}")).map(|v| {
                            let n = v.len();
                            Tensor::<1>::from_data(TensorData::new(v, [n]), device)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        run.trainer.restore(model, velocity, &header.trainer)?;
        run.measurer
            .set_warm_vectors(f64s("warm.hessian"), f64s("warm.gauss_newton"));
        run.rows = header.rows;
        run.measured = header.measured;
        run.t0 = web_time::Instant::now() - Duration::from_secs_f64(header.elapsed_s.max(0.0));
        Ok((run, header))
    }
}
