//! Presets: the paper's experiments at browser scale, each a link
//! (`?preset=<name>`). A preset is a query string applied over the backend's
//! defaults ([`crate::settings::Settings::for_speed`]), so a preset scales
//! with the machine and any key in the link overrides it.

/// One preset.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The `preset=` value.
    pub name: &'static str,
    /// Menu title.
    pub title: &'static str,
    /// What to look for, one or two sentences.
    pub blurb: &'static str,
    /// The settings it changes, as a URL query.
    pub query: &'static str,
}

/// Every preset, in menu order.
pub static PRESETS: &[Preset] = &[
    Preset {
        name: "sharpening",
        title: "Progressive sharpening (Fig. 1)",
        blurb: "Full-batch GD with the square loss: sharpness climbs until it meets 2/η (the edge \
                of stability) while the Jacobian norm grows with it.",
        query: "data=synthetic&loss=square&ls=0&vary=none",
    },
    Preset {
        name: "label-smoothing",
        title: "Label smoothing calms sharpening",
        blurb: "Square loss towards smoothed targets, α = 0, 0.15, 0.3: the targets move closer \
                together, the fit needs a smaller Jacobian, and sharpness grows more slowly.",
        query: "data=synthetic&loss=square&vary=ls&values=0,0.15,0.3",
    },
    Preset {
        name: "label-smoothing-ce",
        title: "Label smoothing with cross-entropy",
        blurb: "Cross-entropy, α = 0 and 0.2: smoothing keeps the Jacobian norm far smaller, but \
                it also keeps the softmax from saturating, so the loss's curvature in the logits \
                stays large and sharpness ends higher.",
        query: "data=synthetic&loss=ce&lr=0.1&vary=ls&values=0,0.2",
    },
    Preset {
        name: "input-scale",
        title: "Input scale (App. C.2)",
        blurb: "The same data multiplied by 0.5, 1 and 2. Larger inputs sit farther apart, so the \
                fit needs a smaller Jacobian; but the loss is more sensitive to the first \
                layer's weights, so sharpness starts higher and reaches 2/η sooner.",
        query: "data=synthetic&loss=square&ls=0&vary=sin&values=0.5,1,2",
    },
    Preset {
        name: "target-scale",
        title: "Target scale (square loss)",
        blurb: "Square loss towards s·t for s = 0.5, 1, 2: larger targets need larger outputs, \
                so the Jacobian norm and sharpness grow more.",
        query: "data=synthetic&loss=square&ls=0&vary=tscale&values=0.5,1,2",
    },
    Preset {
        name: "learning-rate",
        title: "Learning rate and the edge of stability",
        blurb: "Three step sizes: each run's sharpness rises until it reaches its own 2/η (if it \
                gets there within the run), then hovers there.",
        query: "data=synthetic&loss=square&ls=0&vary=lr&values=0.05,0.1,0.2",
    },
    Preset {
        name: "weight-decay",
        title: "Weight decay",
        blurb: "Weight decay λ = 0, 0.003, 0.01 pulls the weights towards zero, which limits the \
                Jacobian norm and the sharpening that comes with it (CPU scale, step 1200: \
                sharpness 20.5, 17.7, 9.5; max‖J‖ 1.27, 1.04, 0.71).",
        query: "data=synthetic&loss=square&ls=0&vary=wd&values=0,0.003,0.01",
    },
    Preset {
        name: "batch-size",
        title: "Full batch vs minibatches",
        blurb: "GD against SGD with batches of 32: the noise of small batches keeps sharpness \
                well below 2/η.",
        query: "data=synthetic&loss=square&ls=0&vary=batch&values=0,32",
    },
    Preset {
        name: "toy",
        title: "2-D spirals",
        blurb: "Three spiral arms in the plane, cross-entropy with η = 0.5: sharpness rises to \
                2/η = 4, hovers at the edge of stability, then falls as the fit saturates, while \
                the Jacobian norm grows many times over (under a minute on the CPU backend).",
        query: "data=toy&shape=spirals&classes=3&n=300&ntest=300&samples=300&noise=0.03&model=mlp\
                &width=64&depth=2&act=tanh&loss=ce&ls=0&lr=0.5&steps=1000&every=25&vary=none",
    },
    Preset {
        name: "cifar",
        title: "CIFAR-10 from your disk",
        blurb: "Pick or drop CIFAR-10 binary files (data_batch_1.bin, and test_batch.bin for \
                the test set): a small CNN trains on 500 images with cross-entropy, Fig. 1 at \
                browser scale.",
        query: "data=cifar&n=500&ntest=500&samples=500&model=cnn&channels=8,16&act=relu&loss=ce\
                &ls=0&lr=0.05&steps=500&every=25&vary=none",
    },
];

/// One step of the guided story: an idea in plain language, the preset that
/// shows it, and what to watch for (and in which panel).
#[derive(Clone, Copy, Debug)]
pub struct StoryStep {
    pub title: &'static str,
    /// Two or three plain sentences.
    pub text: &'static str,
    /// The preset that shows it.
    pub preset: &'static str,
    /// The link's words.
    pub button: &'static str,
    /// What to look for, pointing at the curve.
    pub watch: &'static str,
    /// The panel it points at (`plot-<panel>` in the page).
    pub panel: &'static str,
}

/// The guided story, in reading order.
pub static STORY: &[StoryStep] = &[
    StoryStep {
        title: "1. Sharpness: how curved the loss is",
        text: "Training moves the weights downhill on the loss. Sharpness is how curved the loss \
               is along its most curved direction (the largest eigenvalue of the Hessian). While \
               a network trains with gradient descent, that curvature usually rises: progressive \
               sharpening.",
        preset: "sharpening",
        button: "progressive sharpening",
        watch: "the solid sharpness curve climbing while the loss falls, until it meets the \
                dashed 2/η line (▼).",
        panel: "sharpness",
    },
    StoryStep {
        title: "2. Why gradient descent stops at 2/η",
        text: "Along a direction of curvature λ, one step of size η multiplies the distance to \
               the valley floor by 1 − ηλ. Below 2/η that shrinks it: the step lands inside the \
               valley. At 2/η the factor is −1: the step lands on the opposite wall at the same \
               height, and the next one comes back. So sharpness cannot settle above 2/η: it \
               hovers there, the edge of stability.",
        preset: "learning-rate",
        button: "three step sizes",
        watch: "in the mechanism panel, the ○ where one step lands: inside the valley early on, \
                on the far wall once the sharpness reaches 2/η. Each run stops at its own 2/η.",
        panel: "mechanism",
    },
    StoryStep {
        title: "3. Why the Jacobian must grow",
        text: "Two nearby inputs of different classes must get outputs a distance Δ apart. Once \
               every example is fitted within Δ/2, the output has to change by at least Δ − 2ℓ \
               over their small distance: the input–output Jacobian is forced up (Theorem 5.1). \
               A sharper loss comes with it.",
        preset: "toy",
        button: "2-D spirals",
        watch: "the ringed points in the decision-region panel: the largest ‖J‖ sit where two \
                classes come close, on the boundary between them; and the ‖J‖ curve rising.",
        panel: "regions",
    },
    StoryStep {
        title: "4. Label smoothing: targets closer together",
        text: "Label smoothing with α moves the targets towards each other, so their distance Δ \
               shrinks by 1 − α. The fit then needs a smaller Jacobian, and (with the square \
               loss) sharpening slows.",
        preset: "label-smoothing",
        button: "α = 0, 0.15, 0.3",
        watch: "the α = 0.3 run's sharpness rising more slowly and its max ‖J‖ ending lower.",
        panel: "sharpness",
    },
    StoryStep {
        title: "5. Input scale: the Jacobian and sharpness part ways",
        text: "Multiplying the inputs by s puts them s times farther apart, so a Jacobian 1/s as \
               large fits them. But the loss becomes more sensitive to the first layer's \
               weights: sharpness starts higher. The two are tied only at a fixed input scale.",
        preset: "input-scale",
        button: "inputs × 0.5, 1, 2",
        watch: "‖J‖ lowest for the largest inputs, while their sharpness is the highest.",
        panel: "jacobian",
    },
];

/// The preset named `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{PageState, Settings};

    #[test]
    fn every_preset_parses_and_plans() {
        for p in PRESETS {
            for base in [Settings::default(), Settings::small(), Settings::tiny()] {
                let st = PageState::from_query(&format!("preset={}", p.name), &base);
                assert!(st.errors.is_empty(), "{}: {:?}", p.name, st.errors);
                assert_eq!(st.preset.as_deref(), Some(p.name));
                let plans = st
                    .settings
                    .plans()
                    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
                assert!(!plans.is_empty());
            }
        }
    }

    #[test]
    fn every_story_step_names_a_preset_and_a_panel() {
        for st in STORY {
            assert!(preset(st.preset).is_some(), "{}: {}", st.title, st.preset);
            assert!(
                [
                    "loss",
                    "sharpness",
                    "jacobian",
                    "accuracy",
                    "mechanism",
                    "regions"
                ]
                .contains(&st.panel),
                "{}",
                st.panel
            );
        }
        let st = PageState::from_query("preset=toy&story=3&autoplay=1", &Settings::small());
        assert!(st.errors.is_empty(), "{:?}", st.errors);
    }

    #[test]
    fn link_keys_override_the_preset() {
        let st = PageState::from_query("preset=toy&steps=40&lr=0.25", &Settings::small());
        assert_eq!((st.settings.steps, st.settings.lr), (40, 0.25));
        assert_eq!(st.settings.width, 64, "the preset's own value");
        assert!(
            PageState::from_query("preset=nope", &Settings::small()).errors[0].contains("nope")
        );
    }
}
