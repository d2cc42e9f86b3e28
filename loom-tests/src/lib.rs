//! Loom models of the compute-bridge races; see tests/.
