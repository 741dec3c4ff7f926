//! One plain-language tooltip for every control and button of the page:
//! what it changes, and what to watch for when it changes. Looked up by URL
//! key (the controls of [`crate::settings::FIELDS`]) or by button name.

/// The tooltip of control or button `key`.
pub fn help(key: &str) -> Option<&'static str> {
    Some(match key {
        "data" => "The training data: the synthetic δ-good set (points near a k-dimensional surface in d dimensions), a 2-D toy set you can see, or CIFAR-10 images from your disk.",
        "k" => "Intrinsic dimension of the synthetic data: the inputs lie near a k-dimensional surface. Smaller k: the classes can sit closer together.",
        "d" => "Input dimension of the synthetic data (the ambient space the k-dimensional surface lives in).",
        "shape" => "Spirals or rings: two 2-D toy sets whose classes wind around each other.",
        "noise" => "Standard deviation of the noise added to the toy points: more noise puts examples of different classes closer together, so the fit needs a larger Jacobian.",
        "classes" => "Number of classes C (the network has C outputs).",
        "n" => "Training examples N. Full-batch gradient descent uses all of them in every step.",
        "ntest" => "Test examples: the test loss and accuracy are measured on them.",
        "sin" => "Input scale s_in: every input is multiplied by it. Larger inputs sit farther apart, so a smaller Jacobian fits them — but the loss becomes more sensitive to the first layer's weights, so sharpness starts higher.",
        "model" => "A fully connected network (MLP), or a small convolutional network for images.",
        "width" => "Units per hidden layer of the MLP.",
        "depth" => "Hidden layers of the MLP.",
        "channels" => "Channels of each convolution block of the CNN, comma-separated (e.g. 8,16).",
        "act" => "The nonlinearity after every hidden layer.",
        "loss" => "Square loss ½‖z − s·t‖² on the outputs, or cross-entropy on their softmax.",
        "ls" => "Label smoothing α: the targets become (1 − α)·one-hot + α/C. They move towards each other (their distance Δ shrinks by 1 − α), so the fit needs a smaller Jacobian — and sharpening slows (square loss).",
        "tscale" => "Target scale s_out of the square loss: the outputs must reach s·t, so larger targets need larger outputs and Jacobians, and sharpness grows more.",
        "lr" => "Learning rate (step size) η. Gradient descent is stable only along directions of curvature below 2/η: sharpness rises until it meets 2/η, then hovers there.",
        "batch" => "Minibatch size; 0 = full batch (gradient descent). Small batches add noise that keeps sharpness below 2/η.",
        "mom" => "Heavy-ball momentum μ (0 = plain gradient descent). With momentum the stability limit is 2(1 + μ)/η.",
        "wd" => "Weight decay λ: pulls the weights towards zero at every step (added to the gradient; not part of the plotted loss).",
        "seed" => "Seed of the initial weights and of the minibatch order: the same seed gives the same run.",
        "steps" => "Optimiser steps the run takes.",
        "every" => "Measure sharpness, Jacobian norms and losses every M steps (measurements cost far more than a step).",
        "samples" => "How many training examples the measurements use (the first n).",
        "gn" => "Also estimate the top eigenvalue of the Gauss–Newton matrix, the part of the Hessian that comes from the network's Jacobian (dotted line under the Hessian's).",
        "spectrum" => "Also measure the Hessian's whole spectrum at every second measurement: its density (stochastic Lanczos quadrature), its trace (Hutch++, with an error bar) and the top eigenvalue of each layer's block — the outliers above the bulk are what sharpness is about. Each costs Hessian-vector products: measurements take several times longer.",
        "vary" => "Compare runs: one run per value of this setting, overlaid in colour.",
        "values" => "The values of the compared setting, comma-separated (at most 4).",
        "backend" => "Where the network trains: WebGPU (your graphics card) when the browser offers it, else the CPU (WebAssembly).",
        "play" => "Train (Space). On a finished run: start it again from the same initial weights.",
        "step" => "One optimiser step (s); measurements come every M steps, the loss after each step.",
        "reset" => "Back to step 0 with the same initial weights (r).",
        "file" => "CIFAR-10 binary files: data_batch_1.bin (and test_batch.bin for the test set). They stay in your browser.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FIELDS;

    #[test]
    fn every_control_and_button_has_a_tooltip() {
        for f in FIELDS {
            assert!(help(f.key).is_some(), "no tooltip for control {}", f.key);
        }
        for b in ["play", "step", "reset", "file"] {
            assert!(help(b).is_some(), "{b}");
        }
        assert!(help("nope").is_none());
    }
}
