//! The repository's integration tests: one binary (`cargo test --test it`), one module per
//! concern. Every test runs the real `cargo xtask pki` binary on a fixture in a temporary folder,
//! and judges what it made with independent implementations (openssl, gnutls, kubectl, etcd).

mod support;

mod adopt;
mod bad_input;
mod bad_input_cases;
mod completions;
mod crash;
mod damage;
mod embedding;
mod encryption;
mod external_ca;
mod fuzz;
mod keys_and_clocks;
mod markdown_size;
mod plan_formats;
mod progress;
mod renew;
mod resolve_edge;
mod restarts;
mod safety;
mod scale;
mod secrets;
mod snapshots;
mod sops;
mod status;
mod swapped;
mod vouched;

mod bench;
mod etcd;
mod generate;
mod gnutls;
mod incremental;
mod kubectl;
