//! Traces and logs (`telemetry`) and Prometheus metrics (`metrics`).

pub mod metrics;
pub mod telemetry;
