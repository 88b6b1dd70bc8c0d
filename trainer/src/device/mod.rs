//! The device side seen from the host: the sample set the firmware embeds, the firmware's log,
//! its replay through the core and the agreement with the trainer's predictions.

pub mod agreement;
pub mod log;
pub mod replay;
pub mod samples;
