//! Media UDP ports for WebRTC calls: `hotline-media`'s RTP port pool, the same one the phone
//! line takes its RTP/RTCP pairs from. A WebRTC call leases one port ([`PortPool::lease`]; its
//! stack binds it and muxes RTCP), held by the call's [`PortLease`] until the call ends.

pub use hotline_media::ports::{PortError, PortLease, PortPool};
