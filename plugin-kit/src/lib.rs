//! A toolkit for pn plugin authors, on top of the contract (`pn-plugin-api`): the persistence
//! kernels and their σ/λ rules ([`persistence`]), the anchors restart strategies keep
//! ([`anchors`]), initialisation schemes, activations and shape checks for models
//! ([`layers`]), and helpers for data sets ([`data`]). Like the contract, it does not depend on
//! Burn: everything here is written with the contract's tensor operations.
#![warn(missing_docs)]

pub mod anchors;
pub mod data;
pub mod layers;
pub mod persistence;

#[cfg(test)]
mod tests {
    #[test]
    fn config_errors_name_the_field() {
        use crate::persistence::{PersistenceConfig, Preset};
        struct P;
        impl Preset for P {
            const NAME: &'static str = "p";
            const DESCRIPTION: &'static str = "";
            const PARAMS: &'static [&'static str] = &["*"];
        }
        let err =
            pn_plugin_api::component::parse_config::<PersistenceConfig<P>>(r#"{"lambda": "big"}"#)
                .err()
                .unwrap();
        assert!(err.contains("`lambda`"), "{err}");
        let err =
            pn_plugin_api::component::parse_config::<PersistenceConfig<P>>(r#"{"lamda": 1.0}"#)
                .err()
                .unwrap();
        assert!(err.contains("lamda"), "{err}");
    }

    #[test]
    fn release_factor_falls_to_zero_over_the_last_part() {
        use crate::persistence::release_factor;
        let at = |step| pn_plugin_api::Progress {
            phase: 1,
            step,
            steps_in_phase: 100,
            epoch: 0,
        };
        assert_eq!(release_factor(at(0), 0.3), 1.0);
        assert_eq!(release_factor(at(70), 0.3), 1.0);
        assert!((release_factor(at(85), 0.3) - 0.5).abs() < 1e-9);
        assert_eq!(release_factor(at(100), 0.3), 0.0);
    }
}
