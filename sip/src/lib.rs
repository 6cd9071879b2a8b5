//! hotline-sip: the phone edge (SIP, SDP, RTP/RTCP, jitter buffer, DTMF). It knows nothing about bots.
