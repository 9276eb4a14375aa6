//! What the OTLP JSON readers of every signal share (`metrics`, `spans`, `logs`): each reads
//! its own envelope into the protobuf types, with these pieces in common.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::{Deserialize, Deserializer};

/// `null` reads as the default, as the protobuf JSON mapping wants.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A `resource`: only its attributes matter to the decoders.
#[derive(serde::Deserialize)]
pub(crate) struct Resource {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) attributes: Vec<KeyValue>,
}
