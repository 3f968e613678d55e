//! Training through the plugin boundary: the loss falls, phases start where they should.

use pn_host::device::parse_device;
use pn_host::engine::{self, Silent, Status, TrainConfig};
use pn_host::job::{load_data, ComponentRef};
use serde_json::json;

#[test]
fn a_few_epochs_reduce_the_loss() {
    let registry = pn_tests::registry(&["baseline", "mlp", "teacher_student"]);
    let device = parse_device("cpu").unwrap();
    let data = load_data(
        &registry,
        &ComponentRef {
            name: "teacher_student".into(),
            config: json!({"train": 400, "valid": 100}),
        },
        &device,
    )
    .unwrap();
    let (model, _) = registry
        .model(
            "mlp",
            &json!({"hidden": [10], "output": "sum", "bias": false}),
        )
        .unwrap();
    let (mut strategy, _) = registry.strategy("baseline", &json!({})).unwrap();
    let cfg = TrainConfig {
        epochs: 5,
        batch_size: 100,
        ..TrainConfig::default()
    };
    let outcome = engine::run(&mut strategy, &model, &data, &cfg, 0, &device, &mut Silent);
    assert_eq!(outcome.status, Status::Completed, "{:?}", outcome.message);
    let epochs = &outcome.phases[0].epochs;
    assert!(
        epochs.last().unwrap().train_loss < 0.8 * epochs[0].train_loss,
        "{epochs:?}"
    );
    assert_eq!(outcome.steps, 20);
}
