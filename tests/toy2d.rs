//! The `toy2d` plugin: its loss is the documented surface, plain training from the start ends in
//! the poor minimum, and persistence reaches the global one on some seeds.

use pn_host::run::{load_data, ComponentRef};
use pn_host::train::params::ParamStore;
use pn_host::train::{self, ModelRunner, Silent, Status, TrainConfig};
use serde_json::json;

/// The surface of the plugin's docs with its default constants.
fn surface(x: f64, y: f64) -> f64 {
    let d = |cx: f64, cy: f64| (x - cx).powi(2) + (y - cy).powi(2);
    let well = |cx, cy, a: f64, w: f64| a * (-d(cx, cy) / (2.0 * w * w)).exp();
    0.05 * d(1.5, 0.0) - well(1.5, 0.0, 1.0, 0.6) - well(-1.0, 0.0, 0.6, 0.35) + 1.0 + 0.01
}

#[test]
fn the_loss_is_the_surface_and_persistence_escapes_where_plain_training_stays() {
    let registry = pn_tests::registry(&["toy2d", "baseline", "full_persistent"]);
    let device = pn_host::device::parse_device("cpu").unwrap();
    let dataset = ComponentRef {
        name: "toy2d".into(),
        config: json!({}),
    };
    let data = load_data(&registry, &dataset, &device).unwrap();
    let (model, _) = registry.model("toy2d", &json!({})).unwrap();
    let trainer = ModelRunner::new(&model, &data, &device).unwrap();
    for (x, y) in [(-1.6, 0.6), (-1.0, 0.0), (1.5, 0.0), (0.3, -0.8)] {
        let values = vec![vec![x as f32], vec![y as f32]];
        let module = ParamStore::new(&trainer.specs, &values, &device).unwrap();
        let loss = trainer.evaluate(&module, &data.train, 64).unwrap().0;
        let expected = surface(x, y);
        assert!(
            (loss - expected).abs() < 1e-4 * expected.max(1.0),
            "S({x}, {y}) = {expected}, loss {loss}"
        );
    }

    let cfg = TrainConfig {
        lr: 0.02,
        batch_size: 8,
        epochs: 400,
        ..TrainConfig::default()
    };
    let mut escaped = 0;
    for seed in 0..8 {
        let final_loss = |name: &str| {
            let (mut strategy, _) = registry.strategy(name, &json!({})).unwrap();
            let outcome = train::run(
                &mut strategy,
                &model,
                &data,
                &cfg,
                seed,
                &device,
                &mut Silent,
            );
            assert_eq!(
                outcome.result.status,
                Status::Completed,
                "{:?}",
                outcome.result.message
            );
            let selected = outcome.result.selected_phase.unwrap() as usize;
            outcome.result.phases[selected].final_train_loss
        };
        let plain = final_loss("baseline");
        assert!(
            plain > 0.5,
            "seed {seed}: plain training should stop in the poor minimum, got {plain}"
        );
        if final_loss("full_persistent") < 0.1 {
            escaped += 1;
        }
    }
    assert!(
        escaped >= 2,
        "persistence reached the global minimum on {escaped} of 8 seeds"
    );
}
