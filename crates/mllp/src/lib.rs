//! Bedside monitors over HL7 v2 and MLLP.
//!
//! * [`frame`]: MLLP framing, resilient to partial, slow, oversized and garbled input;
//! * [`message`]: the ORU^R01 fields Keta reads (structure parsed by `hl7-parser`);
//! * [`ack`]: original-mode acknowledgements (AA, AE, AR) echoing the control id;
//! * [`mapping`]: OBX codes and units (`data/devices/observation-codes.toml`) to vital signs;
//! * [`listener`]: the TCP listener, one task per connection, ACK after the handler commits.
//!
//! No database here: `keta-web` supplies the handler that stores what arrives. Choices are
//! recorded in `docs/decisions/0008-bedside-monitors-hl7.md`.

pub mod ack;
pub mod frame;
pub mod listener;
pub mod mapping;
pub mod message;
pub mod sim;

pub use ack::{AckCode, build_ack, read_ack};
pub use frame::{FrameDecoder, FrameEvent, encode_frame};
pub use listener::{ListenerConfig, ListenerStats, MessageHandler, Received, Reply};
pub use mapping::{DeviceReading, ObservationTable, Refusal, TimeWindow, map_readings};
pub use message::{Header, MessageError, OruMessage, parse_header, parse_oru};
