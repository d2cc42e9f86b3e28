//! The endpoints the load generator sends to.

use serde::{Deserialize, Serialize};

/// The endpoints the load generator exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /tokenize`.
    Tokenize,
    /// `POST /embed`.
    Embed,
    /// `POST /infer`.
    Infer,
    /// `GET /ping`.
    Ping,
}

impl Endpoint {
    /// The compute endpoints, in the order clients cycle through them.
    pub const COMPUTE: [Endpoint; 3] = [Endpoint::Tokenize, Endpoint::Embed, Endpoint::Infer];
    /// Every endpoint, in report order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Tokenize,
        Endpoint::Embed,
        Endpoint::Infer,
        Endpoint::Ping,
    ];

    /// The route.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Tokenize => "/tokenize",
            Endpoint::Embed => "/embed",
            Endpoint::Infer => "/infer",
            Endpoint::Ping => "/ping",
        }
    }

    /// The endpoint's slot in per-endpoint arrays ([`Endpoint::ALL`] order).
    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::Tokenize => 0,
            Endpoint::Embed => 1,
            Endpoint::Infer => 2,
            Endpoint::Ping => 3,
        }
    }
}
